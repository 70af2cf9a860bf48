"""The rows of the segment contract tables, as the profile projection writes them.

Per profile: ``profiles``, ``profile_stored_traits``, ``profile_interests``, ``profile_touchpoints`` (replaced
whenever the profile changes). Per event of a person: a ``profile_events`` row (kind, event, name, time,
properties), made once from the event the fold has in hand (:func:`fact_of`) and appended; merges and splits
re-key only the rows of the people involved (``owners``). Identifying values never reach a row
(:mod:`takt.privacy.identifying`): an identifying trait's value is a marker, identifying properties are left
out.

A :class:`TablesWrite` is what one persist changes; the engines apply it (``takt.storage.duckdb_segment_tables``,
``takt.storage.pg_segment_tables``) in the profile store's transaction, with the position it reflects.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson
import pyarrow as pa

from takt.events.model import Event, parse_time
from takt.privacy.identifying import Identifying
from takt.profiles.config import ProfileConfig
from takt.profiles.state import ProfileState
from takt.profiles.touchpoints import channel_of, hour_of_week

TS = pa.timestamp("us", tz="UTC")

PROFILE_SCHEMAS: dict[str, pa.Schema] = {
    "profiles": pa.schema([("profile_id", pa.string()), ("first_seen", TS), ("last_seen", TS),
                           ("top_interest", pa.string()), ("interest_shifted_at", TS)]),
    "profile_stored_traits": pa.schema([("profile_id", pa.string()), ("name", pa.string()), ("value", pa.string()),
                                        ("provenance", pa.string())]),
    "profile_interests": pa.schema([("profile_id", pa.string()), ("key", pa.string()), ("score", pa.float64()),
                                    ("as_of", TS), ("half_life_days", pa.float64())]),
    "profile_touchpoints": pa.schema([("profile_id", pa.string()), ("touchpoint", pa.string()),
                                      ("count", pa.int64()), ("last_at", TS)]),
}
EVENTS_SCHEMA = pa.schema([("profile_id", pa.string()), ("position", pa.int64()), ("kind", pa.string()),
                           ("event", pa.string()), ("name", pa.string()), ("ts", TS), ("properties", pa.string()),
                           ("touchpoint", pa.string()), ("source", pa.string()), ("received_at", TS),
                           ("hour_of_week", pa.int32())])
OWNERS_SCHEMA = pa.schema([("profile_id", pa.string()), ("position", pa.int64())])

Fact = tuple[str, str | None, str | None, datetime, str, str, str, datetime, int]
"""What ``profile_events`` holds of one event besides its owner and position: kind, event, name, ts, properties
(JSON text without identifying properties), and for analytics (``docs/analytics.md``) the touchpoint it came
through (:func:`takt.profiles.touchpoints.channel_of`), its source, when the server received it, and its hour of
the week in the person's local time where the event says it (:func:`takt.profiles.touchpoints.hour_of_week`)."""


def time_of(v: Any) -> datetime | None:
    if v is None:
        return None
    if isinstance(v, int | float):
        return epoch(v)
    return parse_time(v)


def epoch(v: float) -> datetime:
    """Epoch seconds to a time, saturating at the representable range: the float of 9999-12-31T23:59:59.999999
    rounds past it (an event stored before the plausible-time window must not break a profile read)."""
    try:
        return datetime.fromtimestamp(float(v), tz=UTC)
    except (ValueError, OverflowError, OSError):
        return datetime.max.replace(tzinfo=UTC) if v > 0 else datetime.min.replace(tzinfo=UTC)


def shifted_at(state: ProfileState) -> datetime | None:
    return time_of(state.shifts[-1]["at"]) if state.shifts else None


def fact_of(event: Event, identifying: Identifying, config: ProfileConfig | None = None) -> Fact:
    """An event's ``profile_events`` facts (``config`` maps sources to touchpoints: ``profiles.source_channels``;
    without it, the defaults)."""
    props = identifying.properties_of(event.properties)
    return (event.kind, event.event, event.name, event.timestamp, orjson.dumps(props).decode(),
            channel_of(event, config if config is not None else _default_config()), event.source,
            event.received_at, hour_of_week(event))


@lru_cache(maxsize=1)
def _default_config() -> ProfileConfig:
    return ProfileConfig()


def profile_rows(states: Iterable[ProfileState], config: ProfileConfig) -> dict[str, pa.Table]:
    """The per-profile tables' rows of these profiles."""
    ident = config.identifying
    prof: dict[str, list[Any]] = {k: [] for k in PROFILE_SCHEMAS["profiles"].names}
    traits: dict[str, list[Any]] = {k: [] for k in PROFILE_SCHEMAS["profile_stored_traits"].names}
    interests: dict[str, list[Any]] = {k: [] for k in PROFILE_SCHEMAS["profile_interests"].names}
    touch: dict[str, list[Any]] = {k: [] for k in PROFILE_SCHEMAS["profile_touchpoints"].names}
    for s in states:
        prof["profile_id"].append(s.id)
        prof["first_seen"].append(time_of(s.stats.get("first_seen")))
        prof["last_seen"].append(time_of(s.stats.get("last_seen")))
        prof["top_interest"].append(s.top_interest)
        prof["interest_shifted_at"].append(shifted_at(s))
        for name, t in s.traits.items():
            traits["profile_id"].append(s.id)
            traits["name"].append(name)
            traits["value"].append(orjson.dumps(ident.trait_value(name, t["value"])).decode())
            traits["provenance"].append(t["provenance"])
        for key, (score, as_of) in s.interests.items():
            interests["profile_id"].append(s.id)
            interests["key"].append(key)
            interests["score"].append(float(score))
            interests["as_of"].append(epoch(as_of))
            interests["half_life_days"].append(config.half_life_seconds(key) / 86400.0)
        for channel, tp in s.touchpoints.items():
            touch["profile_id"].append(s.id)
            touch["touchpoint"].append(channel)
            touch["count"].append(int(tp["count"]))
            touch["last_at"].append(time_of(tp.get("last_at")))
    cols = {"profiles": prof, "profile_stored_traits": traits, "profile_interests": interests,
            "profile_touchpoints": touch}
    return {name: pa.table(c, schema=PROFILE_SCHEMAS[name]) for name, c in cols.items()}


def events_table(rows: Sequence[tuple[str, int, Fact]]) -> pa.Table:
    """``profile_events`` rows from (profile id, position, facts)."""
    return pa.table({
        "profile_id": [r[0] for r in rows],
        "position": [r[1] for r in rows],
        "kind": [r[2][0] for r in rows],
        "event": [r[2][1] for r in rows],
        "name": [r[2][2] for r in rows],
        "ts": [r[2][3] for r in rows],
        "properties": [r[2][4] for r in rows],
        "touchpoint": [r[2][5] for r in rows],
        "source": [r[2][6] for r in rows],
        "received_at": [r[2][7] for r in rows],
        "hour_of_week": [r[2][8] for r in rows],
    }, schema=EVENTS_SCHEMA)


def owners_table(pairs: Sequence[tuple[str, int]]) -> pa.Table:
    return pa.table({"profile_id": [p for p, _ in pairs], "position": [n for _, n in pairs]}, schema=OWNERS_SCHEMA)


def _empty_owners() -> pa.Table:
    return owners_table([])


def _empty_events() -> pa.Table:
    return events_table([])


@dataclass
class TablesWrite:
    """What one persist changes in the segment contract tables, and the log position they then reflect."""

    position: int
    rows: dict[str, pa.Table]
    """Rows of the changed profiles, per table (``profiles``, ``profile_stored_traits``, …)."""
    changed: list[str] = field(default_factory=list)
    """Profiles whose rows are replaced by ``rows``."""
    removed: list[str] = field(default_factory=list)
    """Profiles merged away, split or erased: their rows go (events they held that another profile now holds
    are re-keyed through ``owners`` first)."""
    events: pa.Table = field(default_factory=_empty_events)
    """New ``profile_events`` rows."""
    owners: pa.Table = field(default_factory=_empty_owners)
    """(profile id, position) of every event of the profiles re-folded by a merge or split: their rows are
    re-keyed to that owner, and rows those profiles held for other positions deleted."""
    replace: bool = False
    """Delete every row first (the write holds the whole state)."""
    building: bool = False
    """A later batch of a whole build (:func:`build`): written even though the tables do not reflect the store's
    position yet (an incremental write to such tables is skipped)."""


def build(states: Iterable[ProfileState], log: Any, config: ProfileConfig, position: int,
          write: Any, progress: Any = None, batch: int = 5_000, chunk: int = 20_000) -> None:
    """Build the tables whole (an empty or older workspace, a projection restored from a snapshot): the rows of
    every state, and its events' rows read through the event log's interface (so they hold what the log returns,
    erasures included), written through ``write`` (a :meth:`~takt.profiles.store.ProfileStore.write_tables`) in
    batches of ``batch`` profiles. Only the last write records ``position``: an interrupted build leaves the
    tables marked as not built (``-1``). ``progress(n)`` is told of every ``n`` events read."""
    ident = config.identifying
    first = True
    pending: list[ProfileState] = []

    def flush(last: bool) -> None:
        nonlocal first
        owner = {pos: s.id for s in pending for pos in s.folded}
        wanted = sorted(owner)
        rows: list[tuple[str, int, Fact]] = []
        for i in range(0, len(wanted), chunk):
            for se in log.get(wanted[i:i + chunk]):
                rows.append((owner[se.position], se.position, fact_of(se.event, ident, config)))
            if progress is not None:
                progress(len(wanted[i:i + chunk]))
        rows.sort(key=lambda r: r[1])
        write(TablesWrite(position if last else -1, rows=profile_rows(pending, config), events=events_table(rows),
                          replace=first, building=not first))
        first = False
        pending.clear()

    for s in states:
        pending.append(s)
        if len(pending) >= batch:
            flush(False)
    flush(True)
