"""Profiles as relational tables: what the segment compiler's SQL reads.

From the profile projection this writes the tables of the segment contract (``docs/segments.md``):
``profiles``, ``profile_traits``, ``profile_interests``, ``profile_touchpoints``, ``profile_event_map`` and the
view ``profile_events`` over the log. The same rows feed the live evaluator (:func:`profile_view`), so SQL
and live evaluation read the same facts.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa

from takt.events.model import parse_time
from takt.profiles.config import ProfileConfig
from takt.profiles.state import ProfileState
from takt.segments.view import EventRow, InterestRow, ProfileView, TouchpointRow

_TS = pa.timestamp("us", tz="UTC")


def _time(v: Any) -> datetime | None:
    if v is None:
        return None
    if isinstance(v, int | float):
        return datetime.fromtimestamp(float(v), tz=UTC)
    return parse_time(v)


def _shifted_at(state: ProfileState) -> datetime | None:
    return _time(state.shifts[-1]["at"]) if state.shifts else None


def profile_tables(states: Iterable[ProfileState], config: ProfileConfig) -> dict[str, pa.Table]:
    """Arrow tables of the segment contract (all but the events view) for these profiles."""
    prof: dict[str, list[Any]] = {k: [] for k in ("profile_id", "first_seen", "last_seen", "top_interest",
                                                   "interest_shifted_at")}
    traits: dict[str, list[Any]] = {k: [] for k in ("profile_id", "name", "value", "provenance")}
    interests: dict[str, list[Any]] = {k: [] for k in ("profile_id", "key", "score", "as_of", "half_life_days")}
    touch: dict[str, list[Any]] = {k: [] for k in ("profile_id", "touchpoint", "count", "last_at")}
    emap: dict[str, list[Any]] = {"profile_id": [], "position": []}
    for s in states:
        prof["profile_id"].append(s.id)
        prof["first_seen"].append(_time(s.stats.get("first_seen")))
        prof["last_seen"].append(_time(s.stats.get("last_seen")))
        prof["top_interest"].append(s.top_interest)
        prof["interest_shifted_at"].append(_shifted_at(s))
        for name, t in s.traits.items():
            traits["profile_id"].append(s.id)
            traits["name"].append(name)
            traits["value"].append(orjson.dumps(t["value"]).decode())
            traits["provenance"].append(t["provenance"])
        for key, (score, as_of) in s.interests.items():
            interests["profile_id"].append(s.id)
            interests["key"].append(key)
            interests["score"].append(float(score))
            interests["as_of"].append(datetime.fromtimestamp(float(as_of), tz=UTC))
            interests["half_life_days"].append(config.half_life_seconds(key) / 86400.0)
        for channel, tp in s.touchpoints.items():
            touch["profile_id"].append(s.id)
            touch["touchpoint"].append(channel)
            touch["count"].append(int(tp["count"]))
            touch["last_at"].append(_time(tp.get("last_at")))
        for p in s.positions:
            emap["profile_id"].append(s.id)
            emap["position"].append(p)
    return {
        "profiles": pa.table(prof, schema=pa.schema([("profile_id", pa.string()), ("first_seen", _TS),
                                                     ("last_seen", _TS), ("top_interest", pa.string()),
                                                     ("interest_shifted_at", _TS)])),
        "profile_traits": pa.table(traits, schema=pa.schema([("profile_id", pa.string()), ("name", pa.string()),
                                                             ("value", pa.string()), ("provenance", pa.string())])),
        "profile_interests": pa.table(interests, schema=pa.schema([
            ("profile_id", pa.string()), ("key", pa.string()), ("score", pa.float64()), ("as_of", _TS),
            ("half_life_days", pa.float64())])),
        "profile_touchpoints": pa.table(touch, schema=pa.schema([
            ("profile_id", pa.string()), ("touchpoint", pa.string()), ("count", pa.int64()), ("last_at", _TS)])),
        "profile_event_map": pa.table(emap, schema=pa.schema([("profile_id", pa.string()),
                                                              ("position", pa.int64())])),
    }


def profile_view(state: ProfileState, events: Iterable[EventRow], config: ProfileConfig) -> ProfileView:
    """The live evaluator's view of one profile: the same facts as its table rows."""
    return ProfileView(
        profile_id=state.id,
        first_seen=_time(state.stats.get("first_seen")),
        last_seen=_time(state.stats.get("last_seen")),
        top_interest=state.top_interest,
        interest_shifted_at=_shifted_at(state),
        traits={n: (t["value"], t["provenance"]) for n, t in state.traits.items()},
        interests=tuple(InterestRow(k, float(sc), datetime.fromtimestamp(float(at), tz=UTC),
                                    config.half_life_seconds(k) / 86400.0)
                        for k, (sc, at) in state.interests.items()),
        touchpoints={c: TouchpointRow(int(tp["count"]), _time(tp.get("last_at")))
                     for c, tp in state.touchpoints.items()},
        events=tuple(events),
    )


# The view over the log: one row per event of a person, in the shape the compiler reads.
DUCKDB_EVENTS_VIEW = """
CREATE OR REPLACE VIEW profile_events AS
SELECT m.profile_id, e.kind, e.event, json_extract_string(e.payload, '$.name') AS name, e.ts,
       coalesce(json_extract(takt_open(e.payload, e.subject, e.sealed), '$.properties')::VARCHAR, '{}') AS properties
FROM profile_event_map m JOIN events e USING (position)
"""


def materialize_duckdb(con: Any, tables: dict[str, pa.Table]) -> None:
    """Replace the profile tables in a DuckDB connection, atomically."""
    cur = con.cursor()
    cur.execute("BEGIN TRANSACTION")
    try:
        for name, table in tables.items():
            cur.register("_takt_rows", table)
            cur.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _takt_rows")  # names are ours
            cur.unregister("_takt_rows")
        cur.execute(DUCKDB_EVENTS_VIEW)
        cur.execute("COMMIT")
    except BaseException:
        cur.execute("ROLLBACK")
        raise
