"""A segment definition in plain English.

``count(track "Order Completed" in last 365d) >= 2 and trait.country = "DE"`` reads "people who completed an
order at least twice in the last 365 days and whose country is DE".
"""

from __future__ import annotations

import re

from takt.segments import ast as a
from takt.segments.functions import FUNCTIONS, FunctionRegistry
from takt.text import article

_UNITS = {"h": "hour", "d": "day", "w": "week"}
_OPS = {"=": "is", "!=": "is not", "<": "is less than", "<=": "is at most", ">": "is more than",
        ">=": "is at least"}
_PROVENANCES = {"customer_provided": "given by the customer", "crm_import": "imported from the CRM",
                "observed": "observed", "third_party": "from a third party"}
_PROFILE_TIMES = {"first_seen": "were first seen", "last_seen": "were last seen",
                  "interest_shifted": "changed their top interest"}


def explain(node: a.Condition, functions: FunctionRegistry | None = None) -> str:
    return "people " + _Explainer(functions or FUNCTIONS).clause(node)


def value(v: a.Value) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return v if v and re.fullmatch(r"[\w:/.@+-]+", v) else f"“{v}”"
    return str(v) if isinstance(v, int) else f"{v:g}"


def duration(d: a.Duration) -> str:
    unit = _UNITS[d.unit]
    return f"{unit}" if d.amount == 1 else f"{d.amount} {unit}s"


def window(w: a.Window | None) -> str:
    if w is None:
        return ""
    if isinstance(w, a.LastWindow):
        return f" in the last {duration(w.duration)}"
    return f" between {w.start.isoformat()} and {w.end.isoformat()}"


def times(op: str, n: a.Value) -> str:
    """How often: ``>= 2`` → "at least twice"."""
    if not isinstance(n, int) or isinstance(n, bool):
        return f"a number of times that {_OPS[op]} {value(n)}"
    words = {1: "once", 2: "twice"}

    def k(m: int) -> str:
        return words.get(m, f"{m} times")

    if op == ">=":
        return "at least " + k(n) if n > 0 else "any number of times"
    if op == ">":
        return "at least " + k(n + 1) if n >= 0 else "any number of times"
    if op == "<=":
        return "at most " + k(n)
    if op == "<":
        return "fewer than " + k(n)
    if op == "=":
        return "exactly " + k(n)
    return "other than exactly " + k(n)


class _Explainer:
    def __init__(self, functions: FunctionRegistry):
        self.functions = functions

    def clause(self, node: a.Condition) -> str:
        if isinstance(node, a.And | a.Or):
            word = " and " if isinstance(node, a.And) else " or "
            return word.join(f"({self.clause(i)})" if isinstance(i, a.And | a.Or) else self.clause(i)
                             for i in node.items)
        if isinstance(node, a.Not):
            inner = node.item
            if isinstance(inner, a.InSegment):
                return f"who are not in segment {value(inner.name)}"
            if isinstance(inner, a.Exists) and isinstance(inner.left, a.TraitRef):
                return "who have no " + self.trait(inner.left)
            text = self.clause(inner)
            return f"who are not people ({text})" if isinstance(inner, a.And | a.Or) else f"who are not people {text}"
        if isinstance(node, a.InSegment):
            return f"who are in segment {value(node.name)}"
        if isinstance(node, a.CallCondition):
            return self.call_text(node.call)
        left = node.left
        if isinstance(left, a.Aggregate) and left.func == "count" and isinstance(node, a.Compare):
            if node.op == "=" and node.right == 0:
                return f"who never {self.events(left)}{window(left.window)}"
            return f"who {self.events(left)} {times(node.op, node.right)}{window(left.window)}"
        if isinstance(left, a.ProfileTime | a.Touchpoint) and isinstance(node, a.Within | a.Before | a.After):
            subject = _PROFILE_TIMES[left.field] if isinstance(left, a.ProfileTime) else (
                f"last came through {value(left.touchpoint)}")
            return f"who {subject}{self.when(node)}"
        if isinstance(left, a.TraitRef) and isinstance(node, a.Exists):
            return "who have " + article(self.trait(left))
        return f"whose {self.noun(left)} {self.predicate(node)}"

    def when(self, node: a.Condition) -> str:
        if isinstance(node, a.Within):
            return f" in the last {duration(node.duration)}"
        if isinstance(node, a.Before):
            return f" before {node.day.isoformat()}"
        if isinstance(node, a.After):
            return f" after {node.day.isoformat()}"
        return ""

    def predicate(self, node: a.Condition) -> str:
        if isinstance(node, a.Compare):
            return f"{_OPS[node.op]} {value(node.right)}"
        if isinstance(node, a.InList):
            vals = [value(v) for v in node.values]
            return "is " + (vals[0] if len(vals) == 1 else ", ".join(vals[:-1]) + " or " + vals[-1])
        if isinstance(node, a.Contains):
            return f"contains “{node.needle}”"
        if isinstance(node, a.Exists):
            return "is known"
        if isinstance(node, a.Within):
            return f"is within the last {duration(node.duration)}"
        return "is" + self.when(node)

    def trait(self, t: a.TraitRef) -> str:
        name = t.name.replace("_", " ")
        return name + (f" ({_PROVENANCES.get(t.provenance, t.provenance)})" if t.provenance else "")

    def noun(self, op: a.Operand) -> str:
        if isinstance(op, a.TraitRef):
            return self.trait(op)
        if isinstance(op, a.PropertyRef):
            return ".".join(op.path).replace("_", " ")
        if isinstance(op, a.Aggregate):
            what = {"count": "number", "sum": "total", "avg": "average", "min": "smallest", "max": "largest"}
            prop = ".".join(op.prop or ()).replace("_", " ")
            return f"{what[op.func]} {prop} over {self.events(op, noun=True)}{window(op.window)}".replace("  ", " ")
        if isinstance(op, a.Interest):
            return f"interest in {value(op.key)}"
        if isinstance(op, a.TopInterest):
            return "top interest"
        if isinstance(op, a.Touchpoint):
            return (f"number of visits through {value(op.touchpoint)}" if op.field == "count"
                    else f"last visit through {value(op.touchpoint)}")
        if isinstance(op, a.ProfileTime):
            return {"first_seen": "first visit", "last_seen": "last visit",
                    "interest_shifted": "last change of top interest"}[op.field]
        return self.call_text(op)

    def call_text(self, call: a.Call) -> str:
        spec = self.functions.get(call.name)
        if spec is None:
            return f"{call.name}({', '.join(value(v) for v in call.args)})"
        return spec.explain(call.args)

    def events(self, agg: a.Aggregate, noun: bool = False) -> str:
        src = agg.source
        if src.kind == "track":
            if src.name is None:
                text = "events" if noun else "did anything"
            else:
                words = src.name.split()
                if len(words) >= 2 and words[-1].lower().endswith("ed"):
                    obj = " ".join(words[:-1]).lower()
                    text = (f"{words[-1].lower()} {_plural(obj)}" if noun
                            else f"{words[-1].lower()} {article(obj)}")
                else:
                    text = f"“{src.name}” events" if noun else f"did “{src.name}”"
        elif src.kind in ("page", "screen"):
            named = f" {value(src.name)}" if src.name is not None else ""
            text = (f"{src.kind} views{named}" if noun else
                    f"viewed {'the' if src.name else 'a'} {src.kind}{named}")
        elif src.kind == "identify":
            text = "identifications" if noun else "were identified"
        else:
            named = f" {value(src.name)}" if src.name is not None else ""
            text = f"{src.kind} events{named}" if noun else f"had {article(src.kind)} event{named}"
        if agg.where is not None:
            text += " " + self.clause(agg.where)
        return text


def _plural(noun: str) -> str:
    return noun if noun.endswith("s") else noun + "s"
