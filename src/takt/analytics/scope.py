"""Who and when an analysis covers, and the interactions it reads, as sqlglot trees.

A :class:`Scope` is a group of people — a segment (its definition, compiled by :mod:`takt.segments` to its
member set at ``now``) or everyone — and a period ``[start, end)``. :func:`interactions` selects their
interactions (kinds :data:`~takt.analytics.config.INTERACTION_KINDS`) from ``profile_events`` with each one's
purpose (:func:`purpose_case`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlglot import exp

from takt.analytics.config import INTERACTION_KINDS, KIND_PURPOSES
from takt.segments import ast as a
from takt.segments.compile import compile_segment
from takt.segments.dialects import dialect

EVENTS = "profile_events"


@dataclass(frozen=True)
class Scope:
    start: datetime
    end: datetime
    segment: a.Condition | None = None
    """``None``: everyone."""
    now: datetime | None = None
    """When the segment's membership is evaluated (default: ``end``)."""
    segments: Mapping[str, Any] = field(default_factory=dict)
    """Stored segments a definition may name (``in segment "…"``)."""
    label: str = "everyone"

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("start and end must be timezone-aware")

    def members(self, dialect_name: str) -> exp.Select | None:
        if self.segment is None:
            return None
        return compile_segment(self.segment, now=self.now or self.end, dialect_name=dialect_name,
                               segments=dict(self.segments))

    def describe(self) -> dict[str, Any]:
        return {"segment": self.label, "from": iso(self.start), "to": iso(self.end)}


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def col(name: str, table: str | None = None) -> exp.Column:
    return exp.column(name, table) if table else exp.column(name)


def lit(v: str | float) -> exp.Expression:
    if isinstance(v, str):
        return exp.Literal.string(v)
    return exp.Literal.number(v)


def ts(t: datetime, dialect_name: str) -> exp.Expression:
    return dialect(dialect_name).timestamp(t)


def epoch(e: exp.Expression, dialect_name: str) -> exp.Expression:
    return dialect(dialect_name).epoch(e)


def and_(*items: exp.Expression) -> exp.Expression:
    return cast(exp.Expression, exp.and_(*items))


def purpose_case(purposes: Mapping[str, str], kind: exp.Expression, event: exp.Expression) -> exp.Expression:
    """``CASE`` giving each interaction its purpose: page and screen views browse; a track event by its name
    (``purposes``); else ``other``."""
    ifs: list[exp.If] = []
    for k, purpose in sorted(KIND_PURPOSES.items()):
        ifs.append(exp.If(this=exp.EQ(this=kind.copy(), expression=lit(k)), true=lit(purpose)))
    by_purpose: dict[str, list[str]] = {}
    for name, purpose in sorted(purposes.items()):
        by_purpose.setdefault(purpose, []).append(name)
    for purpose, names in sorted(by_purpose.items()):
        ifs.append(exp.If(this=exp.In(this=event.copy(), expressions=[lit(n) for n in names]), true=lit(purpose)))
    return exp.Case(ifs=ifs, default=lit("other"))


def interactions(scope: Scope, dialect_name: str, purposes: Mapping[str, str], *, period: bool = True,
                 since: datetime | None = None) -> exp.Select:
    """The scope's interactions: ``profile_id, position, kind, event, touchpoint, ts, hour_of_week, purpose``;
    in the period when ``period`` (else from ``since``, or any time, up to the period's end)."""
    e = "e"
    kind, event = col("kind", e), col("event", e)
    conds: list[exp.Expression] = [exp.In(this=kind.copy(), expressions=[lit(k) for k in INTERACTION_KINDS])]
    first = scope.start if period else since
    if first is not None:
        conds.append(exp.GTE(this=col("ts", e), expression=ts(first, dialect_name)))
    conds.append(exp.LT(this=col("ts", e), expression=ts(scope.end, dialect_name)))
    members = scope.members(dialect_name)
    if members is not None:
        conds.append(exp.In(this=col("profile_id", e), query=members.subquery()))
    return (exp.select(col("profile_id", e), col("position", e), kind.copy(), event.copy(),
                       exp.Coalesce(this=col("touchpoint", e), expressions=[lit("other")]).as_("touchpoint"),
                       col("ts", e), col("hour_of_week", e),
                       purpose_case(purposes, kind, event).as_("purpose"))
            .from_(exp.to_table(EVENTS).as_(e)).where(and_(*conds)))


def is_goal(goal: str, table: str | None = None) -> exp.Expression:
    return cast(exp.Expression, exp.and_(exp.EQ(this=col("kind", table), expression=lit("track")),
                                         exp.EQ(this=col("event", table), expression=lit(goal))))
