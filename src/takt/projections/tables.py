"""Profiles as relational tables: what the segment compiler's SQL reads.

From the profile projection this writes the tables of the segment contract (``docs/segments.md``):
``profiles``, ``profile_traits``, ``profile_interests``, ``profile_touchpoints``, ``profile_event_map`` and
``profile_events`` — a view over the log (:func:`materialize_duckdb` alone) or a table read through the event
log's interface (:func:`with_events`). The same rows feed the live evaluator (:func:`profile_view`,
:func:`live_view`), so SQL and live evaluation read the same facts.

:class:`WorkspaceTables` keeps them in the workspace's own database — DuckDB, or PostgreSQL
(:func:`materialize_postgres`) — rewritten when the profile projection has moved, and runs sqlglot queries
there (:func:`count_query`, :func:`page_query` wrap a compiled segment). Events already read are cached by
position, so a rewrite after a few new events reads only those from the log.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.csv as pa_csv
from sqlglot import exp

from takt.events.model import parse_time
from takt.profiles.config import ProfileConfig
from takt.profiles.state import ProfileState
from takt.segments.dialects import dialect
from takt.segments.view import EventRow, InterestRow, ProfileView, TouchpointRow
from takt.storage import pg_projection_tables

_TS = pa.timestamp("us", tz="UTC")


def _time(v: Any) -> datetime | None:
    if v is None:
        return None
    if isinstance(v, int | float):
        return _epoch(v)
    return parse_time(v)


def _epoch(v: float) -> datetime:
    """Epoch seconds to a time, saturating at the representable range: the float of 9999-12-31T23:59:59.999999
    rounds past it (an event stored before the plausible-time window must not break a profile read)."""
    try:
        return datetime.fromtimestamp(float(v), tz=UTC)
    except (ValueError, OverflowError, OSError):
        return datetime.max.replace(tzinfo=UTC) if v > 0 else datetime.min.replace(tzinfo=UTC)


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
            interests["as_of"].append(_epoch(as_of))
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
        interests=tuple(InterestRow(k, float(sc), _epoch(at),
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
    """Replace the profile tables in a DuckDB connection, atomically. ``profile_events`` is a table when
    ``tables`` has it (:func:`with_events`), else a view over the log's ``events`` table."""
    cur = con.cursor()
    existing = {r[0]: r[1] for r in cur.execute(
        "SELECT table_name, table_type FROM information_schema.tables WHERE table_name = 'profile_events'"
    ).fetchall()}
    cur.execute("BEGIN TRANSACTION")
    try:
        if "profile_events" in existing:
            kind = "VIEW" if "VIEW" in str(existing["profile_events"]).upper() else "TABLE"
            cur.execute(f"DROP {kind} profile_events")
        for name, table in tables.items():
            cur.register("_takt_rows", table)
            cur.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _takt_rows")  # names are ours
            cur.unregister("_takt_rows")
        if "profile_events" not in tables:
            cur.execute(DUCKDB_EVENTS_VIEW)
        cur.execute("COMMIT")
    except BaseException:
        cur.execute("ROLLBACK")
        raise


EVENTS_SCHEMA = pa.schema([("profile_id", pa.string()), ("kind", pa.string()), ("event", pa.string()),
                           ("name", pa.string()), ("ts", _TS), ("properties", pa.string())])


EventFacts = tuple[str, str | None, str | None, datetime, str]
"""What ``profile_events`` holds of one event besides its owner: kind, event, name, ts, properties (JSON text)."""


def with_events(log: Any, tables: dict[str, pa.Table], chunk: int = 20_000,
                cache: dict[int, EventFacts] | None = None) -> dict[str, pa.Table]:
    """``tables`` plus ``profile_events`` as a table read through the event log's interface (so it holds what
    the log returns, on any backend, whatever the log does to stored payloads). With ``cache`` (position →
    facts), only events not read before are read from the log; the cache keeps exactly the positions used."""
    emap = tables["profile_event_map"]
    pids = emap.column("profile_id").to_pylist()
    positions = emap.column("position").to_pylist()
    known = cache if cache is not None else {}
    missing = [p for p in positions if p not in known]
    for i in range(0, len(missing), chunk):
        for se in log.get(missing[i:i + chunk]):
            e = se.event
            known[se.position] = (e.kind, e.event, e.name, e.timestamp, orjson.dumps(e.properties).decode())
    if cache is not None and len(cache) > len(positions):
        wanted = set(positions)
        for p in [p for p in cache if p not in wanted]:
            del cache[p]
    facts = [known[p] for p in positions]
    cols = {
        "profile_id": pids,
        "kind": [f[0] for f in facts],
        "event": [f[1] for f in facts],
        "name": [f[2] for f in facts],
        "ts": [f[3] for f in facts],
        "properties": [f[4] for f in facts],
    }
    return {**tables, "profile_events": pa.table(cols, schema=EVENTS_SCHEMA)}


# ---- PostgreSQL: the same tables in the workspace's database, and the same view over its log
POSTGRES_DDL = (
    "CREATE TABLE IF NOT EXISTS profiles (profile_id TEXT PRIMARY KEY, first_seen TIMESTAMPTZ, "
    "last_seen TIMESTAMPTZ, top_interest TEXT NULL, interest_shifted_at TIMESTAMPTZ NULL)",
    "CREATE TABLE IF NOT EXISTS profile_traits (profile_id TEXT, name TEXT, value TEXT, provenance TEXT)",
    "CREATE TABLE IF NOT EXISTS profile_interests (profile_id TEXT, key TEXT, score DOUBLE PRECISION, "
    "as_of TIMESTAMPTZ, half_life_days DOUBLE PRECISION)",
    "CREATE TABLE IF NOT EXISTS profile_touchpoints (profile_id TEXT, touchpoint TEXT, count BIGINT, "
    "last_at TIMESTAMPTZ)",
    "CREATE TABLE IF NOT EXISTS profile_event_map (profile_id TEXT, position BIGINT)",
    "CREATE TABLE IF NOT EXISTS profile_events (profile_id TEXT, kind TEXT, event TEXT NULL, name TEXT NULL, "
    "ts TIMESTAMPTZ, properties TEXT)",
    "CREATE INDEX IF NOT EXISTS profile_traits_pid ON profile_traits (profile_id)",
    "CREATE INDEX IF NOT EXISTS profile_events_pid ON profile_events (profile_id)",
)
TABLES_LOCK = 0x74616B74_00000010  # "takt" · 16: one process rewrites the profile tables at a time


def materialize_postgres(pool: Any, tables: dict[str, pa.Table]) -> None:
    """Replace the profile tables (``profile_events`` included: :func:`with_events`) in the workspace's
    PostgreSQL database in one transaction (readers see the old rows or the new ones, never a mix); rows go
    in with COPY, as CSV that Arrow writes."""
    with pool.connection() as con, con.transaction():
        con.execute("SELECT pg_advisory_xact_lock(%s)", [TABLES_LOCK])
        for ddl in POSTGRES_DDL:
            pg_projection_tables.create(con, ddl)  # UNLOGGED: plaintext traits and event properties
        for name, table in tables.items():
            con.execute(f"TRUNCATE {name}")  # names are ours
            cols = ", ".join(table.column_names)
            # CSV written by Arrow in one go: strings quoted, nulls as unquoted empty fields (NULL to COPY)
            buf = io.BytesIO()
            pa_csv.write_csv(table, buf, pa_csv.WriteOptions(include_header=False, quoting_style="needed"))
            with con.cursor() as cur, cur.copy(f"COPY {name} ({cols}) FROM STDIN (FORMAT csv)") as copy:
                copy.write(buf.getvalue())


class WorkspaceTables:
    """The segment contract tables of one workspace, kept as current as its profile projection: rewritten
    when the projection's log position has moved since the last time (so repeated counts at one position
    reuse them), in the workspace's own database (DuckDB file or PostgreSQL). :meth:`rows` runs a sqlglot
    query in that database's dialect."""

    def __init__(self, storage: Any, runner: Any, computed: Sequence[Any] | None = None):
        self.storage = storage
        self.runner = runner
        self.position = -1
        self._lock = threading.Lock()
        self._events: dict[int, EventFacts] = {}
        self._projector: Any = None
        if computed is None:  # a server's live segments know the configured computed traits
            from takt.segments.live import attached

            live = attached(storage)
            computed = list(live.computed) if live is not None else []
        self.computed = list(computed)
        """Computed traits (:mod:`takt.segments.computed`): rows of ``profile_traits`` at the ``now`` asked."""
        self._computed_key: tuple[int, datetime] | None = None

    @property
    def dialect(self) -> str:
        return "postgres" if self.storage.backend == "postgres" else "duckdb"

    def refresh(self, now: datetime | None = None) -> int:
        """Rewrite the tables if the projection moved; returns the log position they reflect. With computed
        traits, ``now`` is the time their windows are evaluated at (their rows are rewritten when it changes)."""
        with self._lock:
            position = self._refresh_tables()
            if self.computed and now is not None and self._computed_key != (position, now):
                from takt.segments.computed import materialize_computed

                if self.dialect == "postgres":
                    with self.storage._pool.connection() as con:
                        materialize_computed(con, self.computed, now=now, dialect_name="postgres")
                else:
                    materialize_computed(self.storage.con.cursor(), self.computed, now=now)
                self._computed_key = (position, now)
            return position

    def _refresh_tables(self) -> int:
        """Rewrite the tables if the projection moved (callers hold ``_lock``)."""
        runner = self.runner
        with runner.lock:
            position = runner.position
            if position == self.position:
                return position
            # streamed from the store in batches: the cache is not filled with every profile
            tables = profile_tables(runner.projector.states(), runner.config)
            if runner.projector is not self._projector:  # rebuilt (after an erasure, say): read events afresh
                self._events.clear()
                self._projector = runner.projector
        tables = with_events(self.storage.log, tables, cache=self._events)
        if self.dialect == "postgres":
            materialize_postgres(self.storage._pool, tables)
        else:
            materialize_duckdb(self.storage.con, tables)
        self.position = position
        self._computed_key = None  # the rewrite replaced the computed rows
        return position

    def sql(self, query: exp.Expression) -> str:
        """``query`` as SQL text in this database's dialect (for a budgeted run:
        :class:`takt.segments.budget.BudgetedQuery`)."""
        return dialect(self.dialect).sql(query)

    def rows(self, query: exp.Expression) -> list[tuple[Any, ...]]:
        sql = self.sql(query)
        if self.dialect == "postgres":
            with self.storage._pool.connection() as con:
                return list(con.execute(sql).fetchall())
        return list(self.storage.con.cursor().execute(sql).fetchall())


def event_rows(storage: Any, positions: list[int]) -> list[EventRow]:
    """The live evaluator's rows for events of the log (what ``profile_events`` holds for them)."""
    return [EventRow(kind=e.event.kind, ts=e.event.timestamp, event=e.event.event, name=e.event.name,
                     properties=orjson.loads(orjson.dumps(e.event.properties)))
            for e in storage.log.get(positions)] if positions else []


def live_view(runner: Any, profile_id: str) -> ProfileView | None:
    """One profile's view for live evaluation (``None`` for an unknown id), read consistently: the state is
    copied under the runner's lock, its events read from the log afterwards."""
    with runner.lock:
        state = runner.projector.profile(profile_id)
        if state is None:
            return None
        base = profile_view(state, (), runner.config)
        positions = list(state.positions)
    return replace(base, events=tuple(event_rows(runner.storage, positions)))


# ---- queries around a compiled segment (sqlglot trees, never glued strings)
def count_query(members: exp.Select) -> exp.Select:
    """``SELECT count(*)`` over a compiled segment query."""
    return exp.select(exp.Count(this=exp.Star())).from_(members.subquery("m"))


def page_query(members: exp.Select, after: str | None = None, limit: int | None = None) -> exp.Select:
    """The members' ids in ``profile_id`` order, those after ``after``, at most ``limit`` of them."""
    pid = exp.column("profile_id", "m")
    q = exp.select(pid).from_(members.subquery("m"))
    if after is not None:
        q = q.where(exp.GT(this=pid.copy(), expression=exp.Literal.string(after)))
    q = q.order_by(pid.copy())
    return q.limit(limit) if limit is not None else q


def workspace_vocabulary(storage: Any, runner: Any, settings: Any = None) -> Any:
    """The names seen in the workspace (traits, track events, interests, touchpoints), the models with scores
    and whether CLV is stored (``settings`` add the declared model targets), for checking definitions and "did
    you mean"; ``None`` while the workspace has no profiles (nothing to check against)."""
    from takt.models.vocabulary import model_vocabulary
    from takt.segments.vocabulary import Vocabulary

    with runner.lock:
        traits_seen: set[str] = set()
        interests_seen: set[str] = set()
        touchpoints_seen: set[str] = set()
        any_state = False
        for s in runner.projector.states():  # streamed: names only, not every state at once
            any_state = True
            traits_seen.update(s.traits)
            interests_seen.update(s.interests)
            touchpoints_seen.update(s.touchpoints)
        if not any_state:
            return None
        traits = frozenset(traits_seen)
        interests = frozenset(interests_seen)
        touchpoints = frozenset(touchpoints_seen)
    sql = "SELECT DISTINCT event FROM events WHERE event IS NOT NULL LIMIT 10000"
    if storage.backend == "postgres":
        with storage._pool.connection() as con:
            rows = con.execute(sql).fetchall()
    else:
        rows = storage.con.cursor().execute(sql).fetchall()
    return Vocabulary(traits=traits, events=frozenset(str(r[0]) for r in rows), interests=interests,
                      touchpoints=touchpoints, **model_vocabulary(storage, settings))
