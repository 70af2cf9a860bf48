"""Inline ``in segment("...")`` references through a lookup; cycles and unknown names are errors."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeAlias

from takt.segments import ast as a
from takt.segments.errors import SegmentError, did_you_mean

SegmentLookup: TypeAlias = Mapping[str, a.Condition] | Callable[[str], a.Condition | None]


def resolve(node: a.Condition, segments: SegmentLookup | None = None, *, _stack: tuple[str, ...] = ()) -> a.Condition:
    """The tree with every segment reference replaced by that segment's (resolved) definition."""
    if isinstance(node, a.InSegment):
        if node.name in _stack:
            cycle = " → ".join((*_stack[_stack.index(node.name):], node.name))
            raise SegmentError(f"segments refer to each other in a cycle: {cycle}", path=f"segment({node.name!r})")
        target = _lookup(segments, node.name)
        if target is None:
            names = list(segments) if isinstance(segments, Mapping) else []
            raise SegmentError(f"unknown segment {node.name!r}", path=f"segment({node.name!r})",
                               hint=did_you_mean(node.name, names))
        return resolve(target, segments, _stack=(*_stack, node.name))
    if isinstance(node, a.And):
        return a.And(tuple(resolve(i, segments, _stack=_stack) for i in node.items))
    if isinstance(node, a.Or):
        return a.Or(tuple(resolve(i, segments, _stack=_stack) for i in node.items))
    if isinstance(node, a.Not):
        return a.Not(resolve(node.item, segments, _stack=_stack))
    return node


def _lookup(segments: SegmentLookup | None, name: str) -> a.Condition | None:
    if segments is None:
        return None
    if isinstance(segments, Mapping):
        return segments.get(name)
    return segments(name)


def check_references(name: str, node: a.Condition, segments: SegmentLookup) -> None:
    """Check that saving ``node`` as segment ``name`` makes no cycle and names only known segments."""
    def lookup(n: str) -> a.Condition | None:
        return node if n == name else _lookup(segments, n)

    resolve(node, lookup, _stack=(name,))
