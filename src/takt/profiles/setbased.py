"""A set-based computation of parts of the profile fold (issue 13, item 5; not wired into ``takt rebuild`` yet).

The Python fold (:mod:`takt.profiles.fold`) stays the reference. Here the same parts are computed over whole
tables instead of event by event:

1. :func:`extract` reads each event once, in position order, and keeps only what the aggregates need: one row
   per event (``ev``: profile, position, count name, time as the fold formats it, whether it is activity, its
   sessionId, the session cutoff, its touchpoint channel and hour of the week) and one row per interest key
   (``ik``: profile, key, epoch seconds, weight, half-life). What an event means (its channel, weight, keys)
   comes from the fold's own helpers, so that part has one definition.
2. :func:`queries` builds the aggregates with sqlglot (no SQL text): stats (first/last seen, counts per name),
   touchpoints (count, last time, hours of the week), sessions (window functions over position order: a new
   sessionId, or a gap longer than ``profiles.session_minutes`` after the latest activity before it) and the
   interest scores in closed form: per key, ``as_of = max t`` and ``score = Σ w · 2^(−(as_of − t)/h)``.
3. An engine runs them (:func:`takt.storage.duckdb_setbased.run`: DuckDB over the Arrow tables) and
   :func:`assemble` turns the rows into the fold's shapes (:class:`Parts`).

Exact against the fold: stats, event counts, sessions, touchpoints, interest ``as_of``; interest scores agree to
1e-9 relative (the fold adds in position order, the closed form sums in any order).
Not covered yet: traits, contact points, orders, returns, cases, the top interest and its shifts (order-dependent:
the declared top at every event), merges (the caller maps each event to its profile; the differential test uses
single-identity logs).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pyarrow as pa
from sqlglot import exp

from takt.events.model import StoredEvent
from takt.identity.kinds import RECORD
from takt.identity.resolver import aware, iso
from takt.profiles.config import ProfileConfig
from takt.profiles.fold import ACTIVITY_KINDS, IGNORED_KINDS, MESSAGE_KIND, _record_channel
from takt.profiles.interests import event_weight, half_life, interest_keys
from takt.profiles.state import JSON, ProfileState
from takt.profiles.touchpoints import HOURS_PER_WEEK, channel_of, hour_of_week, touchpoint_name

EV_SCHEMA = pa.schema([
    ("profile_id", pa.string()), ("position", pa.int64()), ("name", pa.string()), ("at", pa.string()),
    ("activity", pa.bool_()), ("sid", pa.string()), ("cutoff", pa.string()), ("channel", pa.string()),
    ("hour", pa.int16()),
])
IK_SCHEMA = pa.schema([
    ("profile_id", pa.string()), ("key", pa.string()), ("t", pa.float64()), ("w", pa.float64()),
    ("h", pa.float64()),
])


@dataclass
class Tables:
    ev: pa.Table
    ik: pa.Table


@dataclass
class Parts:
    """The parts of one profile's state computed here, in :class:`~takt.profiles.state.ProfileState`'s shapes."""

    first_seen: str | None = None
    last_seen: str | None = None
    events: int = 0
    event_counts: dict[str, int] = field(default_factory=dict)
    sessions: JSON = field(default_factory=lambda: {"count": 0, "last_activity": None, "last_session_id": None})
    touchpoints: dict[str, JSON] = field(default_factory=dict)
    interests: dict[str, list[float]] = field(default_factory=dict)


def touch_channel(stored: StoredEvent, config: ProfileConfig) -> str | None:
    """The touchpoint the fold counts the event on (``_seen``), if any."""
    ev = stored.event
    if ev.kind == RECORD:
        return _record_channel(ev.properties)
    if ev.kind == MESSAGE_KIND:
        status, channel = ev.properties.get("status"), ev.properties.get("channel")
        if status in ("opened", "clicked") and isinstance(channel, str):
            return touchpoint_name(channel) or channel
        return None
    if ev.kind in ACTIVITY_KINDS:
        return channel_of(ev, config)
    return None


def interest_weight(stored: StoredEvent, config: ProfileConfig) -> float:
    """The weight the fold adds to each of the event's interest keys (``_interests``)."""
    ev = stored.event
    if ev.kind == RECORD:
        return config.weights.get("Order Completed", 0.0) if ev.properties.get("record_type") == "order" else 0.0
    return event_weight(ev, config)


def ev_row(cols: dict[str, list[Any]], pid: str, stored: StoredEvent, config: ProfileConfig, gap: timedelta) -> None:
    """Append the event's ``ev`` row (:data:`EV_SCHEMA`) to the columns ``cols`` (the event is one the fold
    folds into ``pid``)."""
    ev = stored.event
    at = iso(ev.timestamp)
    name = ev.event if ev.kind == "track" else (
        f"record:{ev.properties.get('record_type')}" if ev.kind == RECORD else ev.kind)
    activity = ev.kind in ACTIVITY_KINDS
    sid_raw = ev.context.get("sessionId") if ev.context and activity else None
    sid = str(sid_raw) if isinstance(sid_raw, str | int) and not isinstance(sid_raw, bool) else None
    cutoff = None
    if activity and not sid:
        sid = None
        try:
            cutoff = iso(ev.timestamp - gap)
        except OverflowError:  # an event dated in year 1: nothing can be earlier
            cutoff = ""
    channel = touch_channel(stored, config)
    cols["profile_id"].append(pid)
    cols["position"].append(stored.position)
    cols["name"].append(name or ev.kind)
    cols["at"].append(at)
    cols["activity"].append(activity)
    cols["sid"].append(sid)
    cols["cutoff"].append(cutoff)
    cols["channel"].append(channel)
    cols["hour"].append(hour_of_week(ev) if channel is not None else None)


def extract(events: Iterable[StoredEvent], profile_of: Callable[[StoredEvent], str | None],
            config: ProfileConfig) -> Tables:
    """The rows of ``ev`` and ``ik`` for ``events`` (in position order; an event the fold ignores, one without a
    profile, and a repeat of a ``(source, messageId)`` already seen in its profile are left out)."""
    cols: dict[str, list[Any]] = {n: [] for n in EV_SCHEMA.names}
    icols: dict[str, list[Any]] = {n: [] for n in IK_SCHEMA.names}
    seen: set[tuple[str, str, str]] = set()
    gap = timedelta(minutes=config.session_minutes)
    for stored in events:
        ev = stored.event
        if ev.kind in IGNORED_KINDS:
            continue
        pid = profile_of(stored)
        if pid is None or (pid, ev.source, ev.message_id) in seen:
            continue
        seen.add((pid, ev.source, ev.message_id))
        ev_row(cols, pid, stored, config, gap)
        weight = interest_weight(stored, config)
        if weight > 0:
            keys = interest_keys(ev, config)
            if keys:
                t = aware(ev.timestamp).timestamp()
                for k in keys:
                    icols["profile_id"].append(pid)
                    icols["key"].append(k)
                    icols["t"].append(t)
                    icols["w"].append(weight)
                    icols["h"].append(half_life(k, config))
    return Tables(pa.Table.from_pydict(cols, schema=EV_SCHEMA), pa.Table.from_pydict(icols, schema=IK_SCHEMA))


# ---- the aggregates ----
def _c(name: str, table: str | None = None) -> exp.Column:
    return exp.column(name, table)


def _preceding(fn: exp.Expression) -> exp.Window:
    """``fn`` over the profile's rows before this one, in position order."""
    return exp.Window(this=fn, partition_by=[_c("profile_id")],
                      order=exp.Order(expressions=[exp.Ordered(this=_c("position"))]),
                      spec=exp.WindowSpec(kind="ROWS", start="UNBOUNDED", start_side="PRECEDING",
                                          end=exp.Literal.number(1), end_side="PRECEDING"))


def queries() -> dict[str, exp.Select]:
    """The aggregate queries over ``ev`` and ``ik`` (dialect-neutral sqlglot expressions)."""
    stats = (exp.select(_c("profile_id"), exp.Min(this=_c("at")), exp.Max(this=_c("at")), exp.Count(this=exp.Star()))
             .from_("ev").group_by(_c("profile_id")))
    # MIN(position): the fold's dicts hold counts and touchpoints in the order they first occurred
    counts = (exp.select(_c("profile_id"), _c("name"), exp.Count(this=exp.Star()), exp.Min(this=_c("position")))
              .from_("ev").group_by(_c("profile_id"), _c("name")))
    touch = (exp.select(_c("profile_id"), _c("channel"), _c("hour"), exp.Count(this=exp.Star()),
                        exp.Max(this=_c("at")), exp.Min(this=_c("position")))
             .from_("ev").where(_c("channel").is_(exp.null()).not_())
             .group_by(_c("profile_id"), _c("channel"), _c("hour")))
    activity = (exp.select(
        _c("profile_id"), _c("position"), _c("at"), _c("sid"), _c("cutoff"),
        exp.alias_(_preceding(exp.Max(this=_c("at"))), "prev_at"),
        exp.alias_(_preceding(exp.IgnoreNulls(this=exp.LastValue(this=_c("sid")))), "prev_sid"))
        .from_("ev").where(_c("activity")))
    new_session = exp.If(
        this=_c("sid").is_(exp.null()).not_(),
        true=exp.or_(_c("prev_sid").is_(exp.null()), exp.NEQ(this=_c("sid"), expression=_c("prev_sid"))),
        false=exp.or_(_c("prev_at").is_(exp.null()), exp.LT(this=_c("prev_at"), expression=_c("cutoff"))))
    sessions = (exp.select(
        _c("profile_id"),
        exp.Sum(this=exp.Cast(this=new_session, to=exp.DataType.build("INT"))),
        exp.Max(this=_c("at")),
        exp.ArgMax(this=_c("sid"), expression=exp.If(this=_c("sid").is_(exp.null()).not_(), true=_c("position"),
                                                       false=exp.null())))
        .from_(exp.alias_(exp.Subquery(this=activity), "a")).group_by(_c("profile_id")))
    as_of = exp.Window(this=exp.Max(this=_c("t")), partition_by=[_c("profile_id"), _c("key")])
    decayed = (exp.select(_c("profile_id"), _c("key"), _c("t"), _c("w"), _c("h"), exp.alias_(as_of, "as_of"))
               .from_("ik"))
    term = exp.Mul(this=_c("w"), expression=exp.Pow(
        this=exp.Literal.number(2.0),
        expression=exp.Div(this=exp.Paren(this=exp.Sub(this=_c("t"), expression=_c("as_of"))),
                           expression=_c("h"))))
    interests = (exp.select(_c("profile_id"), _c("key"), exp.Sum(this=term), exp.Max(this=_c("as_of")))
                 .from_(exp.alias_(exp.Subquery(this=decayed), "d")).group_by(_c("profile_id"), _c("key")))
    return {"stats": stats, "counts": counts, "touch": touch, "sessions": sessions, "interests": interests}


def stats_queries() -> dict[str, exp.Select]:
    """The aggregates over ``ev`` alone (what the rebuild takes from SQL: stats, counts, touchpoints, sessions)."""
    return {k: q for k, q in queries().items() if k != "interests"}


def assemble(rows: dict[str, list[tuple[Any, ...]]]) -> dict[str, Parts]:
    """Per profile, the parts from the queries' rows (:func:`queries`' names; ``interests`` may be left out).
    Counts and touchpoints come in the order the fold's dicts hold them (first occurrence)."""
    out: dict[str, Parts] = {}
    for pid, first, last, n in rows["stats"]:
        out[pid] = Parts(first_seen=first, last_seen=last, events=int(n))
    for pid, name, n, _ in sorted(rows["counts"], key=lambda r: r[3]):
        out[pid].event_counts[name] = int(n)
    first_at: dict[tuple[str, str], int] = {}
    for pid, channel, _, _, _, pos in rows["touch"]:
        key = (pid, channel)
        if key not in first_at or pos < first_at[key]:
            first_at[key] = pos
    for pid, channel, hour, n, last_at, _ in sorted(rows["touch"], key=lambda r: first_at[(r[0], r[1])]):
        tps = out[pid].touchpoints
        tp = tps.get(channel)
        if tp is None:
            tp = tps[channel] = {"count": 0, "last_at": None, "hours": [0] * HOURS_PER_WEEK}
        tp["count"] += int(n)
        tp["hours"][int(hour)] += int(n)
        if tp["last_at"] is None or last_at > tp["last_at"]:
            tp["last_at"] = last_at
    for pid, count, last_activity, last_sid in rows["sessions"]:
        out[pid].sessions = {"count": int(count), "last_activity": last_activity, "last_session_id": last_sid}
    for pid, key, score, as_of in rows.get("interests", ()):
        out[pid].interests[key] = [float(score), float(as_of)]
    return out


stats_assemble = assemble


def differences(parts: Parts, state: ProfileState, rel: float = 1e-9) -> list[str]:
    """Where ``parts`` differs from the fold's ``state`` (empty: equal; interest scores to ``rel`` relative)."""
    out: list[str] = []
    st = state.stats
    for name, got, want in (("first_seen", parts.first_seen, st["first_seen"]),
                            ("last_seen", parts.last_seen, st["last_seen"]), ("events", parts.events, st["events"]),
                            ("event_counts", parts.event_counts, st["event_counts"]),
                            ("sessions", parts.sessions, st["sessions"])):
        if got != want:
            out.append(f"{name}: {got!r} != {want!r}")
    tps = {ch: {**tp, "hours": list(tp["hours"])} for ch, tp in state.touchpoints.items()}
    if parts.touchpoints != tps:
        out.append(f"touchpoints: {parts.touchpoints!r} != {tps!r}")
    if parts.interests.keys() != state.interests.keys():
        out.append(f"interest keys: {sorted(parts.interests)} != {sorted(state.interests)}")
        return out
    for key, (score, as_of) in state.interests.items():
        got_score, got_as_of = parts.interests[key]
        if got_as_of != as_of:
            out.append(f"interest {key} as_of: {got_as_of!r} != {as_of!r}")
        if not math.isclose(got_score, score, rel_tol=rel):
            out.append(f"interest {key} score: {got_score!r} != {score!r}")
    return out
