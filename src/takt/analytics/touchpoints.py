"""Touchpoint analytics: which touchpoints a group uses, for what, and when.

For a :class:`~takt.analytics.scope.Scope` (a segment or everyone, a period): interactions and people by
touchpoint, by touchpoint × purpose, by hour of the week (in the person's local time where the event says it),
by hour of the week × touchpoint, a trend by day or week × touchpoint, and the touchpoint mix of converters (people with a goal event
in the period) against everyone else. One grouped query per table, on any engine.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlglot import exp

from takt.analytics.config import AnalyticsConfig
from takt.analytics.engine import Engine
from takt.analytics.privacy import note, suppress
from takt.analytics.scope import Scope, col, epoch, interactions, is_goal, lit

S = "s"
BUCKETS = {"day": (86400, 0), "week": (7 * 86400, 4 * 86400)}
"""Trend buckets: (seconds, offset from 1970-01-01, a Thursday: weeks start on Monday)."""


def _events() -> exp.Expression:
    return cast(exp.Expression, exp.Count(this=exp.Star()).as_("events"))


def _people(table: str | None = None) -> exp.Expression:
    return cast(exp.Expression, exp.Count(this=exp.Distinct(expressions=[col("profile_id", table)])).as_("people"))


def grouped(source: exp.Select, keys: list[str], where: exp.Expression | None = None) -> exp.Select:
    """``SELECT keys, count(*) AS events, count(DISTINCT profile_id) AS people FROM (source) GROUP BY keys``."""
    q = exp.select(*(col(k) for k in keys), _events(), _people()).from_(source.subquery(S))
    if where is not None:
        q = q.where(where)
    return q.group_by(*(col(k) for k in keys)).order_by(*(col(k) for k in keys)) if keys else q


def trend_source(source: exp.Select, bucket: str, dialect_name: str) -> exp.Select:
    size, offset = BUCKETS[bucket]
    seconds = exp.Sub(this=epoch(col("ts", S), dialect_name), expression=lit(offset))
    period = exp.cast(exp.Floor(this=exp.Div(this=exp.Paren(this=seconds), expression=lit(size))),
                      exp.DataType.build("bigint"))
    return exp.select(col("profile_id", S), col("touchpoint", S), period.as_("bucket")).from_(source.subquery(S))


def converter_source(source: exp.Select, goal: str) -> exp.Select:
    """Interactions other than the goal, each with ``converter`` = 1 when its person reached the goal in the
    period."""
    converters = exp.select(col("profile_id")).distinct().from_(source.subquery("g")).where(is_goal(goal))
    flag = exp.Case(ifs=[exp.If(this=exp.Is(this=col("profile_id", "c"), expression=exp.Null()), true=lit(0))],
                    default=lit(1))
    return (exp.select(col("profile_id", S), col("touchpoint", S), flag.as_("converter"))
            .from_(source.subquery(S))
            .join(converters.subquery("c"), on=exp.EQ(this=col("profile_id", S), expression=col("profile_id", "c")),
                  join_type="left")
            .where(exp.Not(this=exp.Paren(this=is_goal(goal, S)))))


def _dicts(rows: list[tuple[Any, ...]], names: list[str]) -> list[dict[str, Any]]:
    return [{n: (int(v) if n in ("events", "people", "hour_of_week", "converter", "bucket") and v is not None
                 else v) for n, v in zip(names, r, strict=True)} for r in rows]


def bucket_start(bucket: str, n: int) -> str:
    size, offset = BUCKETS[bucket]
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=offset + n * size)).date().isoformat()


def touchpoints(engine: Engine, scope: Scope, config: AnalyticsConfig, *, goal: str | None = None,
                trend: str = "day") -> dict[str, Any]:
    """The touchpoint report of ``scope`` (``goal``: the event that makes a converter, default the setting)."""
    if trend not in BUCKETS:
        raise ValueError(f"trend is by day or week, not {trend!r}")
    goal = goal or config.goal
    d = engine.dialect
    src = interactions(scope, d, config.purposes)
    k = config.min_group_size
    total = engine.rows(grouped(src, []))
    events, people = (int(total[0][0]), int(total[0][1])) if total else (0, 0)
    report: dict[str, Any] = {"scope": scope.describe(), "engine": d, "goal": goal, "min_group_size": k,
                              "trend_by": trend, "suppressed": {}, "notes": []}
    if people < k:
        report.update(people=None, events=None, by_touchpoint=[], by_purpose=[], hour_of_week=[],
                      hour_of_week_by_touchpoint=[], trend=[], converters=[])
        report["notes"].append(f"the scope has fewer than {k} people: nothing is shown (analytics.min_group_size)")
        return report
    report.update(people=people, events=events)
    sections: dict[str, tuple[exp.Select, list[str], bool]] = {
        "by_touchpoint": (grouped(src, ["touchpoint"]), ["touchpoint"], True),
        "by_purpose": (grouped(src, ["touchpoint", "purpose"]), ["touchpoint", "purpose"], False),
        "hour_of_week": (grouped(src, ["hour_of_week"]), ["hour_of_week"], True),
        "hour_of_week_by_touchpoint": (grouped(src, ["hour_of_week", "touchpoint"]), ["hour_of_week", "touchpoint"],
                                       False),
        "trend": (grouped(trend_source(src, trend, d), ["bucket", "touchpoint"]), ["bucket", "touchpoint"], False),
        "converters": (grouped(converter_source(src, goal), ["converter", "touchpoint"]),
                       ["converter", "touchpoint"], False),
    }
    for name, (query, keys, complementary) in sections.items():
        rows = _dicts(engine.rows(query), [*keys, "events", "people"])
        if name == "trend":
            for r in rows:
                r["period"] = bucket_start(trend, r.pop("bucket"))
        if name == "converters":
            totals: dict[int, int] = {}
            for r in rows:
                totals[r["converter"]] = totals.get(r["converter"], 0) + r["events"]
            for r in rows:
                r["share"] = r["events"] / totals[r["converter"]]
                r["group"] = "converters" if r.pop("converter") else "non-converters"
        shown, hidden = suppress(rows, k, complementary=complementary)
        report[name] = shown
        report["suppressed"][name] = hidden
        text = note(hidden, k)
        if text:
            report["notes"].append(f"{name}: {text}")
    return report
