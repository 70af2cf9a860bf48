"""Typing and name checks over a syntax tree — one pass for both faces.

Errors point into the text when the tree came from :func:`~takt.segments.parser.parse` (nodes carry spans)
and name a JSON path otherwise.
"""

from __future__ import annotations

import math
from typing import Literal, TypeAlias

from takt.events.model import PROVENANCES, known_kinds
from takt.segments import ast as a
from takt.segments import limits
from takt.segments.errors import SegmentError, did_you_mean
from takt.segments.functions import FUNCTIONS, FunctionRegistry
from takt.segments.vocabulary import Vocabulary

Type: TypeAlias = Literal["json", "number", "string", "time", "bool"]
BUILTIN_CALLS = ("interest", "touchpoint", "count", "sum", "avg", "min", "max")


def operand_type(node: a.Operand, functions: FunctionRegistry | None = None) -> Type:
    if isinstance(node, a.TraitRef | a.PropertyRef):
        return "json"
    if isinstance(node, a.Aggregate | a.Interest):
        return "number"
    if isinstance(node, a.TopInterest):
        return "string"
    if isinstance(node, a.Touchpoint):
        return "number" if node.field == "count" else "time"
    if isinstance(node, a.ProfileTime):
        return "time"
    spec = (functions or FUNCTIONS).get(node.name)
    return spec.returns if spec is not None else "json"


def check(
    node: a.Condition,
    *,
    vocabulary: Vocabulary | None = None,
    functions: FunctionRegistry | None = None,
    source: str | None = None,
) -> None:
    _Checker(vocabulary or Vocabulary(), functions or FUNCTIONS, source).condition(node, "$", in_event=False)


class _Checker:
    def __init__(self, vocabulary: Vocabulary, functions: FunctionRegistry, source: str | None):
        self.vocab = vocabulary
        self.functions = functions
        self.source = source

    def fail(self, message: str, node: object, path: str, hint: str = "") -> SegmentError:
        span = getattr(node, "span", None)
        if span is not None and self.source is not None:
            return SegmentError(message, source=self.source, start=span.start, end=span.end, hint=hint)
        return SegmentError(message, path=path, hint=hint)

    def known(self, what: str, name: str, allowed: frozenset[str] | None, node: object, path: str) -> None:
        if allowed is not None and name not in allowed:
            raise self.fail(f"unknown {what} {name!r}", node, path, hint=did_you_mean(name, allowed))

    # ---- conditions
    def condition(self, node: a.Condition, path: str, *, in_event: bool, depth: int = 0) -> None:
        if depth > limits.MAX_NESTING:
            raise self.fail(f"conditions nest deeper than {limits.MAX_NESTING} levels", node, path,
                            hint="parentheses, not and where each add a level: flatten the definition")
        if isinstance(node, a.And | a.Or):
            if len(node.items) < 2:
                raise self.fail(f"{type(node).__name__.lower()} needs at least two conditions", node, path)
            for i, item in enumerate(node.items):
                self.condition(item, f"{path}.items[{i}]", in_event=in_event, depth=depth + 1)
            return
        if isinstance(node, a.Not):
            self.condition(node.item, f"{path}.item", in_event=in_event, depth=depth + 1)
            return
        if isinstance(node, a.InSegment):
            if in_event:
                raise self.fail("a segment cannot be used inside an event filter", node, path)
            self.known("segment", node.name, self.vocab.segments, node, path)
            return
        if isinstance(node, a.CallCondition):
            if in_event:
                raise self.fail("a function cannot be used inside an event filter", node, path)
            t = self.call(node.call, f"{path}.call")
            if t != "bool":
                raise self.fail(f"{node.call.name}(...) is a {t}, not a condition: compare it", node, path,
                                hint=f"e.g. {node.call.name}(...) > 0.5")
            return
        left = node.left
        lpath = f"{path}.left"
        self.not_identifying(left, node, lpath)
        t = self.operand(left, lpath, in_event=in_event, depth=depth)
        what = _describe(left)
        if t == "bool":
            raise self.fail(f"{what} is a condition on its own; it cannot be compared", node, path)
        if isinstance(node, a.Compare):
            self.value(node.right, node, f"{path}.right")
            r = node.right
            ordering = node.op not in ("=", "!=")
            if t == "time":
                raise self.fail(f"{what} is a time: use within, before or after", node, path,
                                hint=f"e.g. {what} within 30d")
            if t == "number" and (isinstance(r, bool) or not isinstance(r, int | float)):
                raise self.fail(f"{what} is a number; compare it with a number, not {_lit(r)}", node, path)
            if t == "string" and not isinstance(r, str):
                raise self.fail(f"{what} is text; compare it with a quoted string, not {_lit(r)}", node, path)
            if ordering and (isinstance(r, bool) or not isinstance(r, int | float)):
                raise self.fail(f"{node.op} needs a number, not {_lit(r)}", node, path,
                                hint="text and booleans compare only with = and !=")
            return
        if isinstance(node, a.InList):
            if not node.values:
                raise self.fail("the list is empty", node, path)
            for i, v in enumerate(node.values):
                self.value(v, node, f"{path}.values[{i}]")
                if t == "time":
                    raise self.fail(f"{what} is a time: use within, before or after", node, path)
                if t == "number" and (isinstance(v, bool) or not isinstance(v, int | float)):
                    raise self.fail(f"{what} is a number; the list holds {_lit(v)}", node, path)
                if t == "string" and not isinstance(v, str):
                    raise self.fail(f"{what} is text; the list holds {_lit(v)}", node, path)
            return
        if isinstance(node, a.Contains):
            if t not in ("json", "string"):
                raise self.fail(f"contains needs text; {what} is a {t}", node, path)
            return
        if isinstance(node, a.Exists):
            return
        # Within / Before / After
        if t != "time":
            raise self.fail(f"{what} is not a time; within, before and after need one", node, path,
                            hint="times: first_seen, last_seen, interest_shifted, touchpoint(...).last_at")
        if isinstance(node, a.Within) and node.duration.amount <= 0:
            raise self.fail("the duration must be positive", node, path)
        if isinstance(node, a.Within):
            self.limit(limits.duration_problem(node.duration), node, f"{path}.duration")
        else:
            self.limit(limits.day_problem(node.day), node, f"{path}.day")

    def not_identifying(self, left: a.Operand, node: object, path: str) -> None:
        """A trait or property declared identifying has no queryable value: comparing it is an error (the tables
        hold only that it has one, so the comparison would silently be false)."""
        ident = self.vocab.identifying
        if ident is None:
            return
        if isinstance(left, a.TraitRef) and not isinstance(node, a.Exists) and ident.trait(left.name):
            raise self.fail(f"trait.{left.name} is identifying: its value is not queryable, only whether it has "
                            "one", node, path,
                            hint=f"trait.{left.name} exists (or: trait.{left.name} from customer_provided); "
                                 "setting privacy.identifying_traits")
        if isinstance(left, a.PropertyRef) and left.path and ident.property(left.path):
            raise self.fail(f"properties.{'.'.join(left.path)} is identifying: the segment tables leave it out",
                            node, path,
                            hint="setting privacy.identifying_properties")

    def limit(self, problem: str | None, node: object, path: str) -> None:
        if problem is not None:
            raise self.fail(problem, node, path)

    def value(self, v: a.Value, node: object, path: str) -> None:
        if isinstance(v, float) and not math.isfinite(v):
            raise self.fail(f"{v} is not a finite number", node, path)
        self.limit(limits.number_problem(v), node, path)

    # ---- operands
    def operand(self, node: a.Operand, path: str, *, in_event: bool, depth: int = 0) -> Type:
        if in_event and not isinstance(node, a.PropertyRef):
            raise self.fail("inside where, conditions are about the event's properties", node, path,
                            hint="e.g. where properties.path contains \"/krabi\"")
        if isinstance(node, a.PropertyRef):
            if not in_event:
                raise self.fail(f"{_describe(node)} names an event property: use it inside an event filter",
                                node, path, hint='e.g. count(page where properties.path contains "/x") >= 1')
            if not node.path:
                raise self.fail("an empty property path", node, path)
            self.known("property", ".".join(node.path), self.vocab.properties, node, path)
            return "json"
        if isinstance(node, a.TraitRef):
            self.known("trait", node.name, self.vocab.traits, node, path)
            if node.provenance is not None and node.provenance not in PROVENANCES:
                raise self.fail(f"unknown provenance {node.provenance!r}", node, path,
                                hint=did_you_mean(node.provenance, PROVENANCES) or "one of " + ", ".join(PROVENANCES))
            return "json"
        if isinstance(node, a.Aggregate):
            self.aggregate(node, path, depth)
            return "number"
        if isinstance(node, a.Interest):
            self.known("interest", node.key, self.vocab.interests, node, path)
            return "number"
        if isinstance(node, a.Touchpoint):
            self.known("touchpoint", node.touchpoint, self.vocab.touchpoints, node, path)
            return operand_type(node)
        if isinstance(node, a.TopInterest | a.ProfileTime):
            return operand_type(node)
        return self.call(node, path)

    def aggregate(self, node: a.Aggregate, path: str, depth: int = 0) -> None:
        src = node.source
        kinds = set(known_kinds()) | set(self.vocab.kinds or ())
        if src.kind not in kinds:
            raise self.fail(f"unknown event kind {src.kind!r}", src, f"{path}.source",
                            hint=did_you_mean(src.kind, kinds) or "e.g. track, page, screen, identify")
        if src.name is not None:
            names = self.vocab.events if src.kind == "track" else (
                self.vocab.pages if src.kind in ("page", "screen") else None)
            what = "event" if src.kind == "track" else f"{src.kind} name"
            self.known(what, src.name, names, src, f"{path}.source")
        if node.func != "count" and node.prop is None:
            raise self.fail(f"{node.func} needs a property to {node.func}", node, path,
                            hint=f'e.g. {node.func}(track "Order Completed".revenue)')
        if node.prop is not None:
            if not node.prop:
                raise self.fail("an empty property path", node, path)
            if self.vocab.identifying is not None and self.vocab.identifying.property(node.prop):
                raise self.fail(f"{'.'.join(node.prop)} is identifying: it is not queryable", node, path,
                                hint="setting privacy.identifying_properties")
            self.known("property", ".".join(node.prop), self.vocab.properties, node, path)
        if node.where is not None:
            self.condition(node.where, f"{path}.where", in_event=True, depth=depth + 1)
        if isinstance(node.window, a.LastWindow) and node.window.duration.amount <= 0:
            raise self.fail("the window must be positive", node, path)
        if isinstance(node.window, a.LastWindow):
            self.limit(limits.duration_problem(node.window.duration), node, f"{path}.window.last")
        if isinstance(node.window, a.BetweenWindow):
            self.limit(limits.day_problem(node.window.start) or limits.day_problem(node.window.end), node,
                       f"{path}.window.between")
        if isinstance(node.window, a.BetweenWindow) and node.window.end < node.window.start:
            raise self.fail("the window ends before it starts", node, path)

    def call(self, node: a.Call, path: str) -> Type:
        spec = self.functions.get(node.name)
        if spec is None:
            hint = unknown_function_hint(node.name, self.functions)
            raise self.fail(f"unknown function {node.name!r}", node, path, hint=hint)
        if len(node.args) != len(spec.params):
            sig = ", ".join(f"{n}: {t}" for n, t in spec.params)
            raise self.fail(f"{node.name} takes {len(spec.params)} argument(s), got {len(node.args)}", node, path,
                            hint=f"{node.name}({sig})")
        for i, (arg, (pname, ptype)) in enumerate(zip(node.args, spec.params, strict=True)):
            ok = isinstance(arg, str) if ptype == "string" else (
                isinstance(arg, int | float) and not isinstance(arg, bool))
            if not ok:
                raise self.fail(f"{node.name}: {pname} must be a {ptype}, not {_lit(arg)}", node,
                                f"{path}.args[{i}]")
            self.value(arg, node, f"{path}.args[{i}]")
        if spec.check is not None:
            problem = spec.check(node.args, self.vocab)
            if problem is not None:
                raise self.fail(problem[0], node, path, hint=problem[1])
        return spec.returns


def unknown_function_hint(name: str, functions: FunctionRegistry) -> str:
    hint = did_you_mean(name, [*functions.names(), *BUILTIN_CALLS])
    if hint:
        return hint
    names = functions.names()
    return ("functions: " + ", ".join(names)) if names else "no functions are registered"


def _lit(v: a.Value) -> str:
    from takt.segments.printer import value_text

    return value_text(v)


def _describe(node: a.Operand) -> str:
    from takt.segments.printer import operand_text

    return operand_text(node)
