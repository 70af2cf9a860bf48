"""What the factory predicts: targets, discovered from the data or declared in settings, and their labels.

A target is a yes/no outcome in the ``horizon`` after a cutoff, for every profile with an event before it:

- ``purchase_<h>d:category:<slug>`` — an order containing the category (one target per category seen in
  orders);
- ``churn_<h>d`` — no event at all in the horizon;
- ``unsubscribe_<h>d`` — a consent withdrawn (``Consent Updated`` with ``status = "withdrawn"``);
- ``service_case_<h>d`` — a service case opened (``Case Opened``);
- ``response_<h>d:topic:<topic>`` — an email opened about a topic (``properties.topic``, else the campaign
  source), one per topic seen;
- declared targets (setting ``models.targets``): ``{name = "…", event = "…", status = "…", topic = "…"}``
  (status and topic optional) — an event of that name in the horizon.

Labels are built as SQL (sqlglot trees) over the work tables of :mod:`takt.models.features`, reading only
events in ``(cutoff, cutoff + horizon]``; the baseline history of a target reads only events before the
cutoff.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, cast

import numpy as np
from sqlglot import exp

from takt.errors import TaktError
from takt.models.features import (
    CASE_OPENED,
    CONSENT_UPDATED,
    DAY,
    EMAIL_OPENED,
    EVENTS_TABLE,
    ITEMS_TABLE,
    FeatureMatrix,
    epoch,
    sql,
)
from takt.settings import register

Family = Literal["purchase", "churn", "event"]


def _check_targets(v: Any) -> None:
    for i, t in enumerate(v):
        if not isinstance(t, dict) or not isinstance(t.get("name"), str) or not isinstance(t.get("event"), str):
            raise ValueError(f"item {i + 1}: expected a table with text 'name' and 'event', got {t!r}")
        extra = set(t) - {"name", "event", "status", "topic"}
        if extra:
            raise ValueError(f"item {i + 1}: unknown keys {', '.join(sorted(extra))} (name, event, status, topic)")
        if not _NAME_RE.fullmatch(t["name"]):
            raise ValueError(f"item {i + 1}: target name {t['name']!r} may hold letters, digits and _ : . -")


_NAME_RE = re.compile(r"[A-Za-z0-9_:.\-]{1,120}")

register("models.targets", [],
         "Targets declared in addition to the discovered ones: a list of tables "
         "{name = \"…\", event = \"…\", status = \"…\", topic = \"…\"} (status and topic optional); the label is "
         "such an event within the horizon.", check=_check_targets)
register("models.discover", True,
         "Discover targets from the data: purchase per category seen in orders, churn, unsubscribe, service "
         "case and response per message topic.")


@dataclass(frozen=True)
class Target:
    name: str
    family: Family
    horizon_days: int
    event: str | None = None
    status: str | None = None
    topic: str | None = None
    category: str | None = None

    def describe(self) -> str:
        h = f"within {self.horizon_days} days"
        if self.family == "purchase":
            return f"buys from category {self.category} {h}"
        if self.family == "churn":
            return f"no activity {h}"
        extra = "".join(f", {k} {v}" for k, v in (("status", self.status), ("topic", self.topic)) if v)
        return f"{self.event}{extra} {h}"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "family": self.family, "horizon_days": self.horizon_days, "event": self.event,
                "status": self.status, "topic": self.topic, "category": self.category}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Target:
        return cls(d["name"], d["family"], int(d["horizon_days"]), d.get("event"), d.get("status"), d.get("topic"),
                   d.get("category"))


def parse_horizon(text: str) -> int:
    """``30d``, ``4w`` or ``30`` → days."""
    m = re.fullmatch(r"\s*(\d+)\s*([dw]?)\s*", text or "")
    if not m or int(m.group(1)) <= 0:
        raise TaktError(f"horizon {text!r}: expected a positive number of days such as 30d or 4w", code="usage")
    return int(m.group(1)) * (7 if m.group(2) == "w" else 1)


def _col(name: str) -> exp.Column:
    return exp.column(name)


def _str(v: str) -> exp.Literal:
    return exp.Literal.string(v)


def _num(v: float) -> exp.Expression:
    return exp.Literal.number(repr(float(v)))


def _eq(name: str, value: str) -> exp.Expression:
    return exp.EQ(this=_col(name), expression=_str(value))


def _window(cutoff: datetime, horizon_days: int) -> exp.Expression:
    c = epoch(cutoff)
    return cast(exp.Expression, exp.and_(exp.GT(this=_col("t"), expression=_num(c)),
                                         exp.LTE(this=_col("t"), expression=_num(c + horizon_days * DAY)),
                                         copy=False))


def event_condition(t: Target) -> exp.Expression:
    assert t.event is not None
    conds = [_eq("event", t.event)]
    if t.status is not None:
        conds.append(_eq("status", t.status))
    if t.topic is not None:
        conds.append(_eq("topic", t.topic))
    return cast(exp.Expression, exp.and_(*conds, copy=False))


def discover(con: Any, before: datetime, horizon_days: int, declared: Sequence[dict[str, Any]] = (),
             discover_: bool = True) -> list[Target]:
    """The targets of a workspace: discovered from events before ``before`` and declared ones."""
    h = horizon_days
    out: list[Target] = []
    if discover_:
        c = epoch(before)
        cats = con.execute(sql(
            exp.select(_col("item")).distinct().from_(ITEMS_TABLE)
            .where(exp.and_(_eq("item_kind", "category"), exp.LT(this=_col("t"), expression=_num(c))))
            .order_by(_col("item")))).fetchall()
        out += [Target(f"purchase_{h}d:category:{r[0]}", "purchase", h, category=str(r[0])) for r in cats]
        out.append(Target(f"churn_{h}d", "churn", h))
        out.append(Target(f"unsubscribe_{h}d", "event", h, event=CONSENT_UPDATED, status="withdrawn"))
        out.append(Target(f"service_case_{h}d", "event", h, event=CASE_OPENED))
        topics = con.execute(sql(
            exp.select(_col("topic")).distinct().from_(EVENTS_TABLE)
            .where(exp.and_(_eq("event", EMAIL_OPENED), exp.Not(this=exp.Is(this=_col("topic"), expression=exp.Null())),
                            exp.LT(this=_col("t"), expression=_num(c))))
            .order_by(_col("topic")))).fetchall()
        out += [Target(f"response_{h}d:topic:{r[0]}", "event", h, event=EMAIL_OPENED, topic=str(r[0]))
                for r in topics]
    seen = {t.name for t in out}
    for d in declared:
        if d["name"] in seen:
            continue
        out.append(Target(d["name"], "event", h, event=d["event"], status=d.get("status"), topic=d.get("topic")))
        seen.add(d["name"])
    return out


def select(targets: Sequence[Target], names: Sequence[str]) -> list[Target]:
    """The targets named (exact names, or a prefix ending in ``*``); an unknown name is an error."""
    by_name = {t.name: t for t in targets}
    out: list[Target] = []
    for n in names:
        if n.endswith("*"):
            hits = [t for t in targets if t.name.startswith(n[:-1])]
        else:
            hits = [by_name[n]] if n in by_name else []
        if not hits:
            from difflib import get_close_matches

            close = get_close_matches(n, list(by_name), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise TaktError(f"unknown target {n!r}{hint}; `takt models targets` lists them", code="not_found",
                            status=404)
        out += [t for t in hits if t not in out]
    return out


# ---- labels ----
def label_queries(targets: Sequence[Target], cutoff: datetime) -> list[tuple[str, exp.Select]]:
    """Queries of ``(profile_id, target)`` rows: who had the outcome in ``(cutoff, cutoff + horizon]``. For churn the
    rows are the *active* profiles (the label is their complement)."""
    out: list[tuple[str, exp.Select]] = []
    purchase = [t for t in targets if t.family == "purchase"]
    by_h: dict[int, list[Target]] = {}
    for t in purchase:
        by_h.setdefault(t.horizon_days, []).append(t)
    for h, ts in by_h.items():
        cats = [exp.Literal.string(str(t.category)) for t in ts]
        q = (exp.select(_col("profile_id"), exp.alias_(_col("item"), "key")).distinct().from_(ITEMS_TABLE)
             .where(exp.and_(_eq("item_kind", "category"), _window(cutoff, h),
                             exp.In(this=_col("item"), expressions=cats))))
        out.append((f"purchase:{h}", q))
    for t in targets:
        if t.family == "churn":
            q = (exp.select(_col("profile_id"), exp.alias_(_str(t.name), "key")).distinct().from_(EVENTS_TABLE)
                 .where(_window(cutoff, t.horizon_days)))
            out.append((t.name, q))
        elif t.family == "event":
            q = (exp.select(_col("profile_id"), exp.alias_(_str(t.name), "key")).distinct().from_(EVENTS_TABLE)
                 .where(exp.and_(_window(cutoff, t.horizon_days), event_condition(t))))
            out.append((t.name, q))
    return out


def labels(con: Any, targets: Sequence[Target], fm: FeatureMatrix) -> dict[str, np.ndarray]:
    """Per target a 0/1 float array aligned with the rows of ``fm`` (labels after ``fm.cutoff``)."""
    index = fm.index()
    n = len(fm)
    out = {t.name: np.zeros(n, dtype=np.float32) for t in targets}
    cat_target = {(t.horizon_days, t.category): t.name for t in targets if t.family == "purchase"}
    for key, q in label_queries(targets, fm.cutoff):
        rows = con.execute(sql(q)).fetchall()
        if key.startswith("purchase:"):
            h = int(key.split(":", 1)[1])
            for pid, cat in rows:
                i = index.get(str(pid))
                name = cat_target.get((h, cat))
                if i is not None and name is not None:
                    out[name][i] = 1.0
        else:
            arr = out[key]
            for pid, _ in rows:
                i = index.get(str(pid))
                if i is not None:
                    arr[i] = 1.0
    for t in targets:
        if t.family == "churn":
            out[t.name] = 1.0 - out[t.name]
    return out


# ---- baseline ----
def baseline_scores(con: Any, targets: Sequence[Target], fm: FeatureMatrix) -> dict[str, np.ndarray]:
    """The simple score each model must beat, from the history before ``fm.cutoff``: for churn the days since
    the last event (recency); for the others how often the person did the very thing before, plus a recency
    bonus ``1 / (1 + days since the last time)`` (popularity within the person)."""
    from takt.models.features import category_query

    c = epoch(fm.cutoff)
    index = fm.index()
    n = len(fm)
    out: dict[str, np.ndarray] = {}
    purchase = [t for t in targets if t.family == "purchase"]
    if purchase:
        per_cat: dict[str, np.ndarray] = {str(t.category): np.zeros(n, dtype=np.float64) for t in purchase}
        rows = con.execute(sql(category_query(fm.cutoff, sorted(per_cat)))).fetchall()
        for pid, cat, orders, last_t in rows:
            i = index.get(str(pid))
            if i is not None and cat in per_cat:
                per_cat[cat][i] = float(orders) + 1.0 / (1.0 + (c - float(last_t)) / DAY)
        for t in purchase:
            out[t.name] = per_cat[str(t.category)]
    recency = fm.column("recency_days").astype(np.float64)
    for t in targets:
        if t.family == "churn":
            out[t.name] = np.nan_to_num(recency, nan=np.nanmax(recency) if len(recency) else 0.0)
        elif t.family == "event":
            arr = np.zeros(n, dtype=np.float64)
            q = (exp.select(_col("profile_id"), exp.Count(this=exp.Star()), exp.Max(this=_col("t")))
                 .from_(EVENTS_TABLE)
                 .where(exp.and_(exp.LT(this=_col("t"), expression=_num(c)), event_condition(t)))
                 .group_by(_col("profile_id")))
            for pid, cnt, last_t in con.execute(sql(q)).fetchall():
                i = index.get(str(pid))
                if i is not None:
                    arr[i] = float(cnt) + 1.0 / (1.0 + (c - float(last_t)) / DAY)
            out[t.name] = arr
    return out


def horizon_delta(days: int) -> timedelta:
    return timedelta(days=days)
