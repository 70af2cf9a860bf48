"""The live evaluator: one person, in memory, at ``now`` — the same meaning the SQL compiler gives.

:func:`evaluate` says whether a :class:`~takt.segments.view.ProfileView` is a member; :func:`next_change`
says when membership will change by the passage of time alone (a purchase leaving "in last 30d", an
interest decaying below a threshold), so the caller can schedule re-evaluation.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from takt.segments import ast as a
from takt.segments import semantics as s
from takt.segments.errors import SegmentError
from takt.segments.functions import FUNCTIONS, FunctionRegistry
from takt.segments.resolve import SegmentLookup, resolve
from takt.segments.view import EventRow, ProfileView


def evaluate(
    node: a.Condition,
    view: ProfileView,
    now: datetime,
    *,
    segments: SegmentLookup | None = None,
    functions: FunctionRegistry | None = None,
) -> bool:
    _aware(now)
    return _Eval(view, now, functions or FUNCTIONS).cond(resolve(node, segments))


def members(node: a.Condition, views: list[ProfileView], now: datetime, **kw: Any) -> set[str]:
    return {v.profile_id for v in views if evaluate(node, v, now, **kw)}


def _aware(now: datetime) -> None:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")


class _Eval:
    def __init__(self, view: ProfileView, now: datetime, functions: FunctionRegistry):
        self.view = view
        self.now = now
        self.functions = functions

    def cond(self, node: a.Condition, event: EventRow | None = None) -> bool:
        if isinstance(node, a.And):
            return all(self.cond(i, event) for i in node.items)
        if isinstance(node, a.Or):
            return any(self.cond(i, event) for i in node.items)
        if isinstance(node, a.Not):
            return not self.cond(node.item, event)
        if isinstance(node, a.InSegment):
            raise SegmentError(f"segment {node.name!r} was not resolved", path=node.name)
        if isinstance(node, a.CallCondition):
            return bool(self.call(node.call))
        v = self.operand(node.left, event)
        if isinstance(node, a.Exists):
            return v is not None
        if isinstance(node, a.Within | a.Before | a.After):
            if v is None:
                return False
            if isinstance(node, a.Within):
                return s.shift(self.now, -node.duration.seconds) < v <= self.now
            if isinstance(node, a.Before):
                return bool(v < s.day_start(node.day))
            return bool(v >= s.day_end(node.day))
        if isinstance(node, a.Compare):
            return _compare(v, node.op, node.right)
        if isinstance(node, a.InList):
            return any(_compare(v, "=", x) for x in node.values)
        # Contains
        text = v if isinstance(v, str) else None
        return text is not None and node.needle in text

    def operand(self, node: a.Operand, event: EventRow | None) -> Any:
        """Text form (str) for JSON values and strings, float for numbers, datetime for times, or None."""
        view = self.view
        if isinstance(node, a.TraitRef):
            entry = view.traits.get(node.name)
            if entry is None or (node.provenance is not None and entry[1] != node.provenance):
                return None
            return s.text_of(entry[0])
        if isinstance(node, a.PropertyRef):
            if event is None:
                raise SegmentError("properties.… outside an event filter", path="$")
            return s.text_of(s.get_path(event.properties, node.path))
        if isinstance(node, a.Aggregate):
            return self.aggregate(node)
        if isinstance(node, a.Interest):
            vals = [s.decayed(r.score, r.as_of, r.half_life_days, self.now) for r in view.interests if r.key == node.key]
            return max(vals) if vals else 0.0
        if isinstance(node, a.TopInterest):
            return view.top_interest
        if isinstance(node, a.Touchpoint):
            tp = view.touchpoints.get(node.touchpoint)
            if node.field == "count":
                return float(tp.count) if tp is not None else 0.0
            return tp.last_at if tp is not None else None
        if isinstance(node, a.ProfileTime):
            return {"first_seen": view.first_seen, "last_seen": view.last_seen,
                    "interest_shifted": view.interest_shifted_at}[node.field]
        value = self.call(node)
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float):
            return float(value)
        return value

    def call(self, node: a.Call) -> Any:
        spec = self.functions.get(node.name)
        if spec is None:
            raise SegmentError(f"unknown function {node.name!r}", path="$")
        return spec.evaluate(node.args, self.view, self.now)

    def matching(self, node: a.Aggregate, *, windowed: bool = True) -> list[EventRow]:
        out = []
        for ev in self.view.events:
            if not source_matches(node.source, ev):
                continue
            if windowed and not s.in_window(ev.ts, node.window, self.now):
                continue
            if node.where is not None and not self.cond(node.where, ev):
                continue
            out.append(ev)
        return out

    def aggregate(self, node: a.Aggregate) -> float | None:
        evs = self.matching(node)
        if node.prop is None:
            return float(len(evs))
        texts = [s.text_of(s.get_path(ev.properties, node.prop)) for ev in evs]
        if node.func == "count":
            return float(sum(1 for t in texts if t is not None))
        nums = [n for n in (s.number_of(t) for t in texts) if n is not None]
        if node.func == "sum":
            return math.fsum(nums) if nums else 0.0
        if not nums:
            return None
        if node.func == "avg":
            return math.fsum(nums) / len(nums)
        return min(nums) if node.func == "min" else max(nums)


def source_matches(src: a.EventSource, ev: EventRow) -> bool:
    if ev.kind != src.kind:
        return False
    if src.name is None:
        return True
    return (ev.event if src.kind == "track" else ev.name) == src.name


def _compare(v: Any, op: str, lit: a.Value) -> bool:
    if v is None:
        return False
    if isinstance(v, str):
        return s.compare_text(v, op, lit)
    if isinstance(v, bool):
        return s.compare_text(s.literal_text(v), op, lit)
    if isinstance(v, float | int) and s.is_number(lit):
        return s.compare_numbers(float(v), op, float(lit))
    return False


# ---------------------------------------------------------------- next_change
def next_change(
    node: a.Condition,
    view: ProfileView,
    now: datetime,
    *,
    segments: SegmentLookup | None = None,
    functions: FunctionRegistry | None = None,
) -> datetime | None:
    """The first instant after ``now`` at which membership changes with no new data, or ``None``.

    Membership only changes by time at known instants: an event entering a window (its ``ts``) or leaving it
    (``ts`` + the window), a profile time leaving ``within``, an interest decaying across a threshold. Each
    candidate is evaluated in order; the first that differs from ``now`` is returned. Functions whose value
    depends on time (``time_dependent``) are not predicted.
    """
    _aware(now)
    functions = functions or FUNCTIONS
    resolved = resolve(node, segments)
    ev = _Eval(view, now, functions)
    current = ev.cond(resolved)
    cands: set[datetime] = set()
    _candidates(resolved, ev, cands)
    for t in sorted(c for c in cands if c > now):
        if _Eval(view, t, functions).cond(resolved) != current:
            return t
    return None


def _candidates(node: a.Condition, ev: _Eval, out: set[datetime]) -> None:
    for child in a.children(node):
        _candidates(child, ev, out)
    if not isinstance(node, a.ATOMS):
        return
    left = node.left
    if isinstance(left, a.Aggregate):
        span = left.window.duration.seconds if isinstance(left.window, a.LastWindow) else None
        for e in ev.matching(left, windowed=False):
            out.add(e.ts)
            if span is not None:
                out.add(s.shift(e.ts, span))
    elif isinstance(node, a.Within):
        t = ev.operand(left, None)
        if t is not None:
            out.add(t)
            out.add(s.shift(t, node.duration.seconds))
    elif isinstance(left, a.Interest):
        thresholds = [node.right] if isinstance(node, a.Compare) else (
            list(node.values) if isinstance(node, a.InList) else [])
        for r in ev.view.interests:
            if r.key != left.key or r.score <= 0 or r.half_life_days <= 0:
                continue
            for thr in thresholds:
                if s.is_number(thr) and float(thr) > 0:  # (an as_of after now may cross before it)
                    days = r.half_life_days * math.log2(r.score / float(thr))
                    if days < 1e6:
                        t = s.shift(r.as_of, days * 86400.0)
                        out.add(s.shift(t, 1e-6))
                        out.add(s.shift(t, 1e-3))
