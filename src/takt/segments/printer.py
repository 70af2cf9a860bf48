"""Syntax tree → canonical text form. ``parse(to_text(node)) == node`` for every valid tree."""

from __future__ import annotations

import json

from takt.segments import ast as a
from takt.segments.lexer import IDENT_RE

KEYWORDS = frozenset({"and", "or", "not", "in", "from", "where", "between", "true", "false"})


def value_text(v: a.Value) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, int):
        return str(v)
    return repr(float(v))


def name_text(name: str) -> str:
    return name if IDENT_RE.fullmatch(name) and name not in KEYWORDS else value_text(name)


def path_text(path: tuple[str, ...]) -> str:
    return "".join("." + name_text(p) for p in path)


def window_text(w: a.Window | None) -> str:
    if w is None:
        return ""
    if isinstance(w, a.LastWindow):
        return f" in last {duration_text(w.duration)}"
    return f" between {w.start.isoformat()} and {w.end.isoformat()}"


def duration_text(d: a.Duration) -> str:
    return f"{d.amount}{d.unit}"


def operand_text(node: a.Operand) -> str:
    if isinstance(node, a.TraitRef):
        base = "trait." + name_text(node.name)
        return base + (f" from {node.provenance}" if node.provenance else "")
    if isinstance(node, a.PropertyRef):
        return "properties" + path_text(node.path)
    if isinstance(node, a.Aggregate):
        src = name_text(node.source.kind) + (" " + value_text(node.source.name) if node.source.name is not None else "")
        prop = path_text(node.prop) if node.prop is not None else ""
        where = f" where {to_text(node.where)}" if node.where is not None else ""
        return f"{node.func}({src}{prop}{where}{window_text(node.window)})"
    if isinstance(node, a.Interest):
        return f"interest({value_text(node.key)})"
    if isinstance(node, a.TopInterest):
        return "top_interest"
    if isinstance(node, a.Touchpoint):
        return f"touchpoint({value_text(node.touchpoint)}).{node.field}"
    if isinstance(node, a.ProfileTime):
        return node.field
    return f"{node.name}({', '.join(value_text(v) for v in node.args)})"


def to_text(node: a.Condition) -> str:
    if isinstance(node, a.Or):
        return " or ".join(_paren(i, a.Or) for i in node.items)
    if isinstance(node, a.And):
        return " and ".join(_paren(i, a.And | a.Or) for i in node.items)
    if isinstance(node, a.Not):
        return "not " + _paren(node.item, a.And | a.Or)
    if isinstance(node, a.InSegment):
        return f"in segment({value_text(node.name)})"
    if isinstance(node, a.CallCondition):
        return operand_text(node.call)
    left = operand_text(node.left)
    if isinstance(node, a.Compare):
        return f"{left} {node.op} {value_text(node.right)}"
    if isinstance(node, a.InList):
        return f"{left} in [{', '.join(value_text(v) for v in node.values)}]"
    if isinstance(node, a.Contains):
        return f"{left} contains {value_text(node.needle)}"
    if isinstance(node, a.Exists):
        if isinstance(node.left, a.TraitRef) and node.left.provenance is not None:
            return left
        return f"{left} exists"
    if isinstance(node, a.Within):
        return f"{left} within {duration_text(node.duration)}"
    if isinstance(node, a.Before):
        return f"{left} before {node.day.isoformat()}"
    return f"{left} after {node.day.isoformat()}"


def _paren(node: a.Condition, kinds: object) -> str:
    text = to_text(node)
    return f"({text})" if isinstance(node, kinds) else text  # type: ignore[arg-type]
