"""Is our data fresh? Per source: the time since its last event arrived, the ingestion lag (event time →
received, p50 and p99), and its volume against its usual level, each against the source's SLA where one is
declared (``analytics.source_sla_minutes``) as ok / warning / breach.

Read from ``profile_events`` (``source``, ``ts``, ``received_at``): the events of people, as the profile
projection has folded them (so a projection that fell behind shows as a stale source too). Sources are systems,
not people: no minimum group applies.

* **breach**: nothing arrived for longer than the SLA;
* **warning**: nothing for more than half the SLA, or the last ``window`` brought less than half the usual
  volume (the average of the ``baseline`` before it);
* **ok** otherwise; **no SLA** when none is declared for the source (nor a ``default``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlglot import exp

from takt.analytics.engine import Engine
from takt.analytics.scope import and_, col, epoch, iso, lit, ts
from takt.segments.dialects import dialect


def _count_if(cond: exp.Expression) -> exp.Expression:
    return exp.Sum(this=exp.Case(ifs=[exp.If(this=cond, true=lit(1))], default=lit(0)))


def freshness_query(dialect_name: str, now: datetime, window: timedelta, baseline: timedelta) -> exp.Select:
    received = col("received_at")
    recent = exp.GTE(this=received.copy(), expression=ts(now - window, dialect_name))
    before = and_(exp.GTE(this=received.copy(), expression=ts(now - window - baseline, dialect_name)),
                  exp.LT(this=received.copy(), expression=ts(now - window, dialect_name)))
    lag = exp.Sub(this=epoch(received.copy(), dialect_name), expression=epoch(col("ts"), dialect_name))
    lag_rows = exp.GTE(this=received.copy(), expression=ts(now - window - baseline, dialect_name))
    lag_in = exp.Case(ifs=[exp.If(this=lag_rows, true=lag)])
    d = dialect(dialect_name)
    return (exp.select(col("source"), exp.Max(this=received.copy()).as_("last_received"),
                       _count_if(recent).as_("recent"), _count_if(before).as_("baseline"),
                       d.percentile(lag_in.copy(), 0.5).as_("lag_p50"), d.percentile(lag_in.copy(), 0.99).as_("lag_p99"),
                       exp.Count(this=exp.Star()).as_("events"))
            .from_(exp.to_table("profile_events"))
            .where(and_(exp.Not(this=exp.Is(this=col("source"), expression=exp.Null())),
                        exp.LTE(this=received.copy(), expression=ts(now, dialect_name))))
            .group_by(col("source")).order_by(col("source")))


def _status(since: float, sla_minutes: float | None, ratio: float | None) -> str:
    if sla_minutes is None:
        return "no SLA"
    if since > sla_minutes * 60:
        return "breach"
    if since > sla_minutes * 30 or (ratio is not None and ratio < 0.5):
        return "warning"
    return "ok"


def freshness(engine: Engine, now: datetime, slas: Mapping[str, float], *, window: timedelta = timedelta(hours=24),
              baseline: timedelta = timedelta(days=28)) -> dict[str, Any]:
    """Per source: ``last_received``, ``since_last_seconds``, ``lag_p50_seconds``/``lag_p99_seconds`` (events
    received in the window and the baseline before it), ``recent`` and ``usual`` events per window, their
    ``volume_ratio``, the ``sla_minutes`` and the ``status``."""
    rows = engine.rows(freshness_query(engine.dialect, now, window, baseline))
    sources = []
    per_window = baseline / window
    for source, last_raw, recent, base, p50, p99, events in rows:
        last = last_raw if last_raw.tzinfo is not None else last_raw.replace(tzinfo=UTC)  # Spark: UTC, naive
        since = (now - last).total_seconds()
        usual = int(base) / per_window if base else None
        ratio = int(recent) / usual if usual else None
        sla = slas.get(str(source), slas.get("default"))
        sources.append({"source": source, "last_received": iso(last), "since_last_seconds": since,
                        "lag_p50_seconds": None if p50 is None else float(p50),
                        "lag_p99_seconds": None if p99 is None else float(p99),
                        "recent": int(recent), "usual": usual, "volume_ratio": ratio, "events": int(events),
                        "sla_minutes": sla, "status": _status(since, sla, ratio)})
    worst = next((s for s in ("breach", "warning", "ok") if any(r["status"] == s for r in sources)), "no SLA")
    return {"at": iso(now), "engine": engine.dialect, "window_hours": window.total_seconds() / 3600,
            "baseline_days": baseline.total_seconds() / 86400, "status": worst, "sources": sources}
