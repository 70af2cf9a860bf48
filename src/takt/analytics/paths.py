"""Paths: the most frequent sequences of touchpoints in the days before a goal event.

Each conversion's steps (:mod:`takt.analytics.journeys`: repeats collapsed) form its path; a path longer than
``length`` steps keeps its last ``length`` (and is marked as cut: ``…``). Paths are counted over conversions and
people; the top ``top`` are shown, each describing at least ``analytics.min_group_size`` people.
"""

from __future__ import annotations

from typing import Any

from sqlglot import exp

from takt.analytics.config import AnalyticsConfig
from takt.analytics.engine import Engine
from takt.analytics.journeys import KEY, conversions, converting_touches, steps
from takt.analytics.privacy import note, suppress
from takt.analytics.scope import Scope, col, lit

MAX_LENGTH = 10


def path_query(step_rows: exp.Select, length: int) -> exp.Select:
    cut = exp.GT(this=col("n"), expression=lit(length))
    index = exp.Case(ifs=[exp.If(this=cut.copy(), true=exp.Sub(this=col("i"), expression=exp.Paren(
        this=exp.Sub(this=col("n"), expression=lit(length)))))], default=col("i"))
    slots = [exp.Max(this=exp.Case(ifs=[exp.If(this=exp.EQ(this=index.copy(), expression=lit(j)),
                                               true=col("touchpoint"))])).as_(f"s{j}")
             for j in range(1, length + 1)]
    flag = exp.Max(this=exp.Case(ifs=[exp.If(this=cut, true=lit(1))], default=lit(0))).as_("cut")
    keep = exp.GT(this=col("i"), expression=exp.Sub(this=col("n"), expression=lit(length)))
    per = (exp.select(*(col(k) for k in KEY), *slots, flag).from_(step_rows.subquery("st")).where(keep)
           .group_by(*(col(k) for k in KEY)))
    keys = [col("cut"), *(col(f"s{j}") for j in range(1, length + 1))]
    return (exp.select(*keys, exp.Count(this=exp.Star()).as_("conversions"),
                       exp.Count(this=exp.Distinct(expressions=[col("profile_id")])).as_("people"))
            .from_(per.subquery("p")).group_by(*(k.copy() for k in keys)))


def totals_query(conv: exp.Select) -> exp.Select:
    return exp.select(exp.Count(this=exp.Star()), exp.Count(this=exp.Distinct(expressions=[col("profile_id")]))
                      ).from_(conv.subquery("c"))


def paths(engine: Engine, scope: Scope, config: AnalyticsConfig, *, goal: str | None = None,
          days: float | None = None, length: int = 5, top: int = 20) -> dict[str, Any]:
    if not 1 <= length <= MAX_LENGTH:
        raise ValueError(f"a path has 1 to {MAX_LENGTH} steps, not {length}")
    goal = goal or config.goal
    days = float(days if days is not None else config.lookback_days)
    d = engine.dialect
    k = config.min_group_size
    conv = conversions(scope, d, config.purposes, goal)
    total = engine.rows(totals_query(conv))
    n_conv, n_people = (int(total[0][0]), int(total[0][1])) if total else (0, 0)
    report: dict[str, Any] = {"scope": scope.describe(), "engine": d, "goal": goal, "days": days,
                              "length": length, "top": top, "min_group_size": k, "suppressed": 0, "notes": []}
    if n_people < k:
        report.update(conversions=None, people=None, paths=[])
        report["notes"].append(f"fewer than {k} people reached the goal: nothing is shown "
                               "(analytics.min_group_size)")
        return report
    rows = engine.rows(path_query(steps(converting_touches(scope, d, config.purposes, goal, days)), length))
    found: list[dict[str, Any]] = []
    for r in rows:
        cut, touch = int(r[0]), [t for t in r[1:1 + length] if t is not None]
        found.append({"path": (["…"] if cut else []) + touch, "conversions": int(r[1 + length]),
                      "people": int(r[2 + length])})
    with_touch = sum(p["conversions"] for p in found)
    shown, hidden = suppress(found, k)
    shown.sort(key=lambda p: (-p["conversions"], -p["people"], p["path"]))
    report.update(conversions=n_conv, people=n_people, without_touches=n_conv - with_touch, paths=shown[:top],
                  suppressed=hidden)
    text = note(hidden, k)
    if text:
        report["notes"].append(text)
    return report
