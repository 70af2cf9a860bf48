"""Syntax tree ↔ JSON form. ``from_json(to_json(node)) == node``.

Every node is an object with a ``"type"``; for example ``count(track "Order Completed" in last 365d) >= 2`` is::

    {"type": "compare", "op": ">=", "right": 2,
     "left": {"type": "aggregate", "func": "count", "source": {"kind": "track", "name": "Order Completed"},
              "window": {"last": "365d"}}}

Dates are ``"YYYY-MM-DD"`` strings and durations ``"30d"`` strings. :func:`from_json` validates the shape
(errors name the JSON path) and then runs the same checks as the parser.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any, cast

from takt.ingest.segment import json_depth
from takt.segments import ast as a
from takt.segments.errors import SegmentError
from takt.segments.functions import FunctionRegistry
from takt.segments.limits import MAX_DIGITS, MAX_NESTING
from takt.segments.vocabulary import Vocabulary

_DUR = re.compile(r"(\d+)([hdw])")
_MAX_JSON_DEPTH = 2 * MAX_NESTING + 8
"""A condition level is at most two JSON levels (an ``and``'s items, an aggregate's ``where``); the checker then
counts the levels exactly. This bound only keeps the reader from recursing through any depth."""


def to_json(node: a.Condition) -> dict[str, Any]:
    if isinstance(node, a.And | a.Or):
        return {"type": type(node).__name__.lower(), "items": [to_json(i) for i in node.items]}
    if isinstance(node, a.Not):
        return {"type": "not", "item": to_json(node.item)}
    if isinstance(node, a.InSegment):
        return {"type": "in_segment", "name": node.name}
    if isinstance(node, a.CallCondition):
        return {"type": "call_condition", "call": operand_json(node.call)}
    left = operand_json(node.left)
    if isinstance(node, a.Compare):
        return {"type": "compare", "left": left, "op": node.op, "right": node.right}
    if isinstance(node, a.InList):
        return {"type": "in", "left": left, "values": list(node.values)}
    if isinstance(node, a.Contains):
        return {"type": "contains", "left": left, "needle": node.needle}
    if isinstance(node, a.Exists):
        return {"type": "exists", "left": left}
    if isinstance(node, a.Within):
        return {"type": "within", "left": left, "duration": _dur(node.duration)}
    kind = "before" if isinstance(node, a.Before) else "after"
    return {"type": kind, "left": left, "day": node.day.isoformat()}


def operand_json(node: a.Operand) -> dict[str, Any]:
    if isinstance(node, a.TraitRef):
        out: dict[str, Any] = {"type": "trait", "name": node.name}
        if node.provenance is not None:
            out["provenance"] = node.provenance
        return out
    if isinstance(node, a.PropertyRef):
        return {"type": "property", "path": list(node.path)}
    if isinstance(node, a.Aggregate):
        out = {"type": "aggregate", "func": node.func, "source": {"kind": node.source.kind}}
        if node.source.name is not None:
            out["source"]["name"] = node.source.name
        if node.prop is not None:
            out["property"] = list(node.prop)
        if node.where is not None:
            out["where"] = to_json(node.where)
        if isinstance(node.window, a.LastWindow):
            out["window"] = {"last": _dur(node.window.duration)}
        elif isinstance(node.window, a.BetweenWindow):
            out["window"] = {"start": node.window.start.isoformat(), "end": node.window.end.isoformat()}
        return out
    if isinstance(node, a.Interest):
        return {"type": "interest", "key": node.key}
    if isinstance(node, a.TopInterest):
        return {"type": "top_interest"}
    if isinstance(node, a.Touchpoint):
        return {"type": "touchpoint", "touchpoint": node.touchpoint, "field": node.field}
    if isinstance(node, a.ProfileTime):
        return {"type": node.field}
    return {"type": "call", "name": node.name, "args": list(node.args)}


def _dur(d: a.Duration) -> str:
    return f"{d.amount}{d.unit}"


def from_json(
    data: Any, vocabulary: Vocabulary | None = None, functions: FunctionRegistry | None = None
) -> a.Condition:
    """Build and check a tree from its JSON form; raises :class:`SegmentError` naming the JSON path."""
    from takt.segments.check import check

    if json_depth(data, _MAX_JSON_DEPTH + 1) > _MAX_JSON_DEPTH:
        raise SegmentError(f"conditions nest deeper than {MAX_NESTING} levels", path="$")
    node = _Reader().condition(data, "$")
    check(node, vocabulary=vocabulary, functions=functions)
    return node


class _Reader:
    def fail(self, path: str, message: str) -> SegmentError:
        return SegmentError(message, path=path)

    def obj(self, data: Any, path: str) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.fail(path, "expected an object")
        return data

    def get(self, d: dict[str, Any], key: str, path: str, types: type | tuple[type, ...]) -> Any:
        if key not in d:
            raise self.fail(f"{path}.{key}", "missing")
        v = d[key]
        if not isinstance(v, types) or (isinstance(v, bool) and bool not in _tuple(types)):
            raise self.fail(f"{path}.{key}", f"expected {_names(types)}")
        return v

    def value(self, v: Any, path: str) -> a.Value:
        if not isinstance(v, str | int | float):
            raise self.fail(path, "expected a string, a number or a boolean")
        return cast(a.Value, v)

    def condition(self, data: Any, path: str) -> a.Condition:
        d = self.obj(data, path)
        t = self.get(d, "type", path, str)
        if t in ("and", "or"):
            items = self.get(d, "items", path, list)
            nodes = tuple(self.condition(x, f"{path}.items[{i}]") for i, x in enumerate(items))
            return a.And(nodes) if t == "and" else a.Or(nodes)
        if t == "not":
            return a.Not(self.condition(d.get("item"), f"{path}.item"))
        if t == "in_segment":
            return a.InSegment(self.get(d, "name", path, str))
        if t == "call_condition":
            call = self.operand(d.get("call"), f"{path}.call")
            if not isinstance(call, a.Call):
                raise self.fail(f"{path}.call", "expected a call")
            return a.CallCondition(call)
        if t not in ("compare", "in", "contains", "exists", "within", "before", "after"):
            raise self.fail(f"{path}.type", f"unknown condition type {t!r}")
        left = self.operand(d.get("left"), f"{path}.left")
        if t == "compare":
            op = self.get(d, "op", path, str)
            if op not in a.COMPARE_OPS:
                raise self.fail(f"{path}.op", f"unknown operator {op!r}")
            return a.Compare(left, op, self.value(d.get("right"), f"{path}.right"))  # type: ignore[arg-type]
        if t == "in":
            values = self.get(d, "values", path, list)
            return a.InList(left, tuple(self.value(v, f"{path}.values[{i}]") for i, v in enumerate(values)))
        if t == "contains":
            return a.Contains(left, self.get(d, "needle", path, str))
        if t == "exists":
            return a.Exists(left)
        if t == "within":
            return a.Within(left, self.duration(self.get(d, "duration", path, str), f"{path}.duration"))
        day = self.day(self.get(d, "day", path, str), f"{path}.day")
        return a.Before(left, day) if t == "before" else a.After(left, day)

    def duration(self, s: str, path: str) -> a.Duration:
        m = _DUR.fullmatch(s) if len(s) <= MAX_DIGITS + 1 else None
        if not m:
            raise self.fail(path, f"expected a duration like 30d, 12h or 2w, got {s!r}")
        return a.Duration(int(m[1]), m[2])  # type: ignore[arg-type]

    def day(self, s: str, path: str) -> date:
        try:
            if len(s) != 10:
                raise ValueError
            return date.fromisoformat(s)
        except ValueError:
            raise self.fail(path, f"expected a date YYYY-MM-DD, got {s!r}") from None

    def path_list(self, v: Any, path: str) -> tuple[str, ...]:
        if not isinstance(v, list) or not all(isinstance(p, str) for p in v):
            raise self.fail(path, "expected a list of strings")
        return tuple(v)

    def operand(self, data: Any, path: str) -> a.Operand:
        d = self.obj(data, path)
        t = self.get(d, "type", path, str)
        if t == "trait":
            prov = d.get("provenance")
            if prov is not None and not isinstance(prov, str):
                raise self.fail(f"{path}.provenance", "expected a string")
            return a.TraitRef(self.get(d, "name", path, str), prov)
        if t == "property":
            return a.PropertyRef(self.path_list(d.get("path"), f"{path}.path"))
        if t == "aggregate":
            func = self.get(d, "func", path, str)
            if func not in a.AGGREGATE_FUNCS:
                raise self.fail(f"{path}.func", f"unknown aggregate {func!r}")
            src = self.get(d, "source", path, dict)
            kind = self.get(src, "kind", f"{path}.source", str)
            name = src.get("name")
            if name is not None and not isinstance(name, str):
                raise self.fail(f"{path}.source.name", "expected a string")
            prop = self.path_list(d["property"], f"{path}.property") if "property" in d else None
            where = self.condition(d["where"], f"{path}.where") if "where" in d else None
            window: a.Window | None = None
            if "window" in d:
                w = self.obj(d["window"], f"{path}.window")
                if "last" in w:
                    window = a.LastWindow(self.duration(self.get(w, "last", f"{path}.window", str),
                                                        f"{path}.window.last"))
                else:
                    window = a.BetweenWindow(
                        self.day(self.get(w, "start", f"{path}.window", str), f"{path}.window.start"),
                        self.day(self.get(w, "end", f"{path}.window", str), f"{path}.window.end"),
                    )
            return a.Aggregate(func, a.EventSource(kind, name), prop, where, window)  # type: ignore[arg-type]
        if t == "interest":
            return a.Interest(self.get(d, "key", path, str))
        if t == "top_interest":
            return a.TopInterest()
        if t == "touchpoint":
            f = d.get("field", "count")
            if f not in a.TOUCHPOINT_FIELDS:
                raise self.fail(f"{path}.field", "expected count or last_at")
            return a.Touchpoint(self.get(d, "touchpoint", path, str), f)
        if t in a.PROFILE_TIMES:
            return a.ProfileTime(t)  # type: ignore[arg-type]
        if t == "call":
            args = self.get(d, "args", path, list)
            return a.Call(self.get(d, "name", path, str),
                          tuple(self.value(v, f"{path}.args[{i}]") for i, v in enumerate(args)))
        raise self.fail(f"{path}.type", f"unknown operand type {t!r}")


def _tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def _names(types: type | tuple[type, ...]) -> str:
    names = {"str": "a string", "list": "a list", "dict": "an object", "int": "a number"}
    return " or ".join(names.get(t.__name__, t.__name__) for t in _tuple(types))
