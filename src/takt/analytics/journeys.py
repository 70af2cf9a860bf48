"""Journeys: the touches that precede each goal event, as sqlglot trees (shared by paths and attribution).

A *conversion* is a goal event (a track event, ``analytics.goal``) of the scope's people in the period. Its
*touches* are the person's other interactions in the ``days`` before it (earlier events at the same time too,
by log position), goal events excepted. Consecutive touches through the same touchpoint count as one *step*
(``web, web, email, web`` → ``web, email, web``). A *non-converting journey* (Markov model) is the steps of a
person of the scope without a conversion in the period, over the last ``days`` of the period.

:func:`steps` gives one row per step: ``profile_id, cpos`` (the conversion's log position; ``-1`` for a
non-converting journey), ``cts`` (its time), ``touchpoint, ts, position``, ``i`` (1 = first step) and ``n``
(the journey's steps).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from sqlglot import exp

from takt.analytics.scope import Scope, and_, col, epoch, interactions, is_goal, lit, ts

KEY = ("profile_id", "cpos")


def _window(func: exp.Expression, order: list[exp.Expression] | None = None,
            partition: tuple[str, ...] = KEY) -> exp.Window:
    return exp.Window(this=func, partition_by=[col(p) for p in partition],
                      order=exp.Order(expressions=[exp.Ordered(this=o) for o in order]) if order else None)


def conversions(scope: Scope, dialect_name: str, purposes: Mapping[str, str], goal: str) -> exp.Select:
    src = interactions(scope, dialect_name, purposes)
    return (exp.select(col("profile_id"), col("position").as_("cpos"), col("ts").as_("cts"))
            .from_(src.subquery("v")).where(is_goal(goal)))


def converting_touches(scope: Scope, dialect_name: str, purposes: Mapping[str, str], goal: str,
                       days: float) -> exp.Select:
    conv = conversions(scope, dialect_name, purposes, goal)
    ev = interactions(scope, dialect_name, purposes, period=False, since=scope.start - timedelta(days=days))
    c, e = "c", "e"
    before = exp.or_(exp.LT(this=col("ts", e), expression=col("cts", c)),
                     exp.and_(exp.EQ(this=col("ts", e), expression=col("cts", c)),
                              exp.LT(this=col("position", e), expression=col("cpos", c))))
    window = exp.GTE(this=epoch(col("ts", e), dialect_name),
                     expression=exp.Sub(this=epoch(col("cts", c), dialect_name), expression=lit(days * 86400)))
    return (exp.select(col("profile_id", c), col("cpos", c), col("cts", c), col("touchpoint", e), col("ts", e),
                       col("position", e))
            .from_(conv.subquery(c))
            .join(ev.subquery(e), on=exp.EQ(this=col("profile_id", e), expression=col("profile_id", c)))
            .where(and_(exp.Not(this=exp.Paren(this=is_goal(goal, e))), window, exp.Paren(this=before))))


def nonconverting_touches(scope: Scope, dialect_name: str, purposes: Mapping[str, str], goal: str,
                          days: float) -> exp.Select:
    since = max(scope.start, scope.end - timedelta(days=days))
    ev = interactions(scope, dialect_name, purposes, period=False, since=since)
    converted = exp.select(col("profile_id")).from_(conversions(scope, dialect_name, purposes, goal).subquery("c"))
    return (exp.select(col("profile_id", "e"), exp.cast(lit(-1), exp.DataType.build("bigint")).as_("cpos"),
                       ts(scope.end, dialect_name).as_("cts"), col("touchpoint", "e"), col("ts", "e"),
                       col("position", "e"))
            .from_(ev.subquery("e"))
            .where(exp.Not(this=exp.In(this=col("profile_id", "e"), query=converted.subquery()))))


def steps(touches: exp.Select) -> exp.Select:
    """Touches collapsed into steps, numbered (``i``) and counted (``n``) per journey."""
    order: list[exp.Expression] = [col("ts"), col("position")]
    lag = _window(exp.Lag(this=col("touchpoint")), order).as_("prev")
    lagged = exp.select(*(col(c) for c in ("profile_id", "cpos", "cts", "touchpoint", "ts", "position")), lag
                        ).from_(touches.subquery("t"))
    keep = exp.or_(exp.Is(this=col("prev"), expression=exp.Null()),
                   exp.NEQ(this=col("prev"), expression=col("touchpoint")))
    kept = exp.select(*(col(c) for c in ("profile_id", "cpos", "cts", "touchpoint", "ts", "position"))
                      ).from_(lagged.subquery("l")).where(keep)
    return exp.select(*(col(c) for c in ("profile_id", "cpos", "cts", "touchpoint", "ts", "position")),
                      _window(exp.RowNumber(), order).as_("i"),
                      _window(exp.Count(this=exp.Star())).as_("n")).from_(kept.subquery("k"))
