"""Attribution of goal events to touchpoints, five models side by side.

Every conversion with at least one step before it (:mod:`takt.analytics.journeys`) is attributed; each model
shares its one conversion among its steps:

* **first-touch**: all of it to the first step;
* **last-touch**: all of it to the last step;
* **linear**: equally, ``1/n`` to each of the ``n`` steps;
* **time-decay** (half-life ``h`` days, several may be asked): step ``j`` gets ``w_j / Σw`` with
  ``w_j = 0.5 ** (age_j / h)``, ``age_j`` the time from the step to the conversion;
* **Markov removal effect** (data-driven): the conversions shared in proportion to each touchpoint's removal
  effect in the absorbing Markov chain of converting and non-converting journeys (:mod:`takt.analytics.markov`).

Each model's credits sum to the conversions attributed (the first three per touchpoint in one grouped query; the
Markov chain's transition counts in another; only the chain is solved in Python, with numpy).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlglot import exp

from takt.analytics import markov
from takt.analytics.config import AnalyticsConfig
from takt.analytics.engine import Engine
from takt.analytics.journeys import KEY, _window, converting_touches, nonconverting_touches, steps
from takt.analytics.journeys import conversions as conversion_query
from takt.analytics.paths import totals_query
from takt.analytics.privacy import note, suppress
from takt.analytics.scope import Scope, col, epoch, lit

DEFINITIONS = {
    "first_touch": "all of a conversion to its first step",
    "last_touch": "all of a conversion to its last step",
    "linear": "a conversion shared equally among its steps",
    "time_decay": "a conversion shared among its steps by weight 0.5^(age/half-life)",
    "markov": "conversions shared by removal effect in the absorbing Markov chain of all journeys (solved exactly)",
}


def _double(e: exp.Expression) -> exp.Expression:
    return exp.cast(e, exp.DataType.build("double"))


def time_decay_name(half_life_days: float) -> str:
    return f"time_decay_{half_life_days:g}d".replace(".", "_")


def credit_query(step_rows: exp.Select, half_lives: Sequence[float], dialect_name: str) -> exp.Select:
    """Per touchpoint: first, last, linear, time-decay credits and the people touched."""
    age = exp.Sub(this=epoch(col("cts"), dialect_name), expression=epoch(col("ts"), dialect_name))
    weights = []
    for j, h in enumerate(half_lives):
        w = exp.Pow(this=_double(lit(0.5)), expression=exp.Div(this=_double(age.copy()),
                                                                 expression=_double(lit(h * 86400.0))))
        weights += [w.as_(f"w{j}"), _window(exp.Sum(this=w.copy())).as_(f"ws{j}")]
    inner = exp.select(col("profile_id"), col("touchpoint"), col("i"), col("n"), *weights).from_(
        step_rows.subquery("st"))

    def count_if(cond: exp.Expression) -> exp.Expression:
        return exp.Sum(this=exp.Case(ifs=[exp.If(this=cond, true=lit(1))], default=lit(0)))

    cols = [col("touchpoint"),
            count_if(exp.EQ(this=col("i"), expression=lit(1))).as_("first_touch"),
            count_if(exp.EQ(this=col("i"), expression=col("n"))).as_("last_touch"),
            exp.Sum(this=exp.Div(this=_double(lit(1)), expression=_double(col("n")))).as_("linear"),
            *(exp.Sum(this=exp.Div(this=col(f"w{j}"), expression=col(f"ws{j}"))).as_(time_decay_name(h))
              for j, h in enumerate(half_lives)),
            exp.Count(this=exp.Distinct(expressions=[col("profile_id")])).as_("people")]
    return exp.select(*cols).from_(inner.subquery("w")).group_by(col("touchpoint")).order_by(col("touchpoint"))


def transition_query(converting: exp.Select, nonconverting: exp.Select) -> exp.Select:
    """(from, to, count) of the Markov chain: ``(start)`` → first step, step → next step, last step → the end."""
    def ends(step_rows: exp.Select, end: str) -> exp.Select:
        nxt = _window(exp.Lead(this=col("touchpoint")), [col("i")])
        return exp.select(col("profile_id"), col("cpos"), col("i"), col("touchpoint").as_("src"),
                          exp.Coalesce(this=nxt, expressions=[lit(end)]).as_("dst")).from_(step_rows.subquery("s"))

    journeys = exp.union(ends(steps(converting), markov.CONVERSION), ends(steps(nonconverting), markov.NULL),
                         distinct=False)
    moves = exp.select(col("src"), col("dst")).from_(journeys.subquery("j"))
    starts = exp.select(lit(markov.START).as_("src"), col("src").as_("dst")).from_(journeys.subquery("j")).where(
        exp.EQ(this=col("i"), expression=lit(1)))
    every = exp.union(moves, starts, distinct=False)
    return (exp.select(col("src"), col("dst"), exp.Count(this=exp.Star()).as_("n")).from_(every.subquery("m"))
            .group_by(col("src"), col("dst")))


def attribution(engine: Engine, scope: Scope, config: AnalyticsConfig, *, goal: str | None = None,
                days: float | None = None, half_lives: Sequence[float] = (7.0,)) -> dict[str, Any]:
    """The attribution report: per touchpoint, every model's credit (suppressed below the minimum group)."""
    goal = goal or config.goal
    days = float(days if days is not None else config.lookback_days)
    half_lives = tuple(float(h) for h in half_lives)
    if not half_lives or any(h <= 0 for h in half_lives):
        raise ValueError("time-decay half-lives must be positive days")
    d = engine.dialect
    k = config.min_group_size
    models = ["first_touch", "last_touch", "linear", *(time_decay_name(h) for h in half_lives), "markov"]
    report: dict[str, Any] = {
        "scope": scope.describe(), "engine": d, "goal": goal, "days": days, "half_lives": list(half_lives),
        "min_group_size": k, "models": models,
        "definitions": {m: DEFINITIONS["time_decay"].replace("half-life", f"half-life {h:g} days")
                        if m.startswith("time_decay") else DEFINITIONS[m]
                        for m, h in zip(models, [0, 0, 0, *half_lives, 0], strict=True)},
        "suppressed": 0, "notes": []}
    total = engine.rows(totals_query(conversion_query(scope, d, config.purposes, goal)))
    n_conv, n_people = (int(total[0][0]), int(total[0][1])) if total else (0, 0)
    if n_people < k:
        report.update(conversions=None, attributed=None, touchpoints=[])
        report["notes"].append(f"fewer than {k} people reached the goal: nothing is shown "
                               "(analytics.min_group_size)")
        return report
    rows = full_credits(engine, scope, config, goal, days, half_lives)
    attributed = int(sum(r["first_touch"] for r in rows))
    shown, hidden = suppress(rows, k)
    report.update(conversions=n_conv, attributed=attributed, touchpoints=shown, suppressed=hidden)
    text = note(hidden, k)
    if text:
        report["notes"].append(text)
    return report


def full_credits(engine: Engine, scope: Scope, config: AnalyticsConfig, goal: str, days: float,
                 half_lives: Sequence[float]) -> list[dict[str, Any]]:
    """Every touchpoint's credits under every model, nothing suppressed."""
    d = engine.dialect
    conv = converting_touches(scope, d, config.purposes, goal, days)
    rows = engine.rows(credit_query(steps(conv), half_lives, d))
    names = ["touchpoint", "first_touch", "last_touch", "linear", *(time_decay_name(h) for h in half_lives), "people"]
    out = [dict(zip(names, r, strict=True)) for r in rows]
    for r in out:
        for n in names[1:]:
            r[n] = int(r[n]) if n in ("first_touch", "last_touch", "people") else float(r[n])
    attributed = sum(r["first_touch"] for r in out)
    counts = {(str(s), str(t)): int(n) for s, t, n in engine.rows(
        transition_query(conv, nonconverting_touches(scope, d, config.purposes, goal, days)))}
    shares = markov.credits(counts, attributed)
    for r in out:
        r["markov"] = shares.get(r["touchpoint"], 0.0)
    return out


__all__ = ["DEFINITIONS", "KEY", "attribution", "credit_query", "full_credits", "transition_query"]
