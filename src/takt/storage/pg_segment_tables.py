"""The segment contract tables in a PostgreSQL workspace database, kept with the log position they reflect.

The same layout as :mod:`takt.storage.duckdb_segment_tables` (tables, the ``profile_traits`` and
``profile_event_map`` views, the position as a row of ``profile_store_meta``), created ``UNLOGGED``
(:mod:`takt.storage.pg_projection_tables`). Rows go in with ``COPY`` (CSV written by Arrow); writes run inside
the caller's transaction (the profile store's).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from takt.storage import pg_projection_tables

if TYPE_CHECKING:
    import psycopg

    from takt.projections.facts import TablesWrite

FORMAT = 2
"""2: ``profile_events`` has ``touchpoint``, ``source``, ``received_at``, ``hour_of_week`` (analytics)."""
META = "segment_tables"
NEWEST_COLUMN = "hour_of_week"
"""A column the current format added: a layout without it is older and is built again."""
SCHEMA_LOCK = 0x74616B74_00000011  # "takt" · 17: one process creates or converts the layout at a time

PROFILE_TABLES = ("profiles", "profile_stored_traits", "profile_interests", "profile_touchpoints")
ALL_TABLES = (*PROFILE_TABLES, "profile_events", "profile_computed_traits", "profile_computed_names")
VIEWS = ("profile_traits", "profile_event_map")

_TABLE_DDL = (
    "CREATE TABLE IF NOT EXISTS profile_store_meta (name TEXT PRIMARY KEY, position BIGINT NOT NULL, "
    "format INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS profiles (profile_id TEXT, first_seen TIMESTAMPTZ, last_seen TIMESTAMPTZ, "
    "top_interest TEXT NULL, interest_shifted_at TIMESTAMPTZ NULL)",
    "CREATE TABLE IF NOT EXISTS profile_stored_traits (profile_id TEXT, name TEXT, value TEXT, provenance TEXT)",
    "CREATE TABLE IF NOT EXISTS profile_interests (profile_id TEXT, key TEXT, score DOUBLE PRECISION, "
    "as_of TIMESTAMPTZ, half_life_days DOUBLE PRECISION)",
    "CREATE TABLE IF NOT EXISTS profile_touchpoints (profile_id TEXT, touchpoint TEXT, count BIGINT, "
    "last_at TIMESTAMPTZ)",
    "CREATE TABLE IF NOT EXISTS profile_events (profile_id TEXT, position BIGINT, kind TEXT, event TEXT NULL, "
    "name TEXT NULL, ts TIMESTAMPTZ, properties TEXT, touchpoint TEXT, source TEXT, received_at TIMESTAMPTZ, "
    "hour_of_week INTEGER)",
    "CREATE TABLE IF NOT EXISTS profile_computed_traits (profile_id TEXT, name TEXT, value TEXT, provenance TEXT)",
    "CREATE TABLE IF NOT EXISTS profile_computed_names (name TEXT)",
)
_OTHER_DDL = (
    "CREATE INDEX IF NOT EXISTS profiles_pid ON profiles (profile_id)",
    "CREATE INDEX IF NOT EXISTS profile_stored_traits_pid ON profile_stored_traits (profile_id)",
    "CREATE INDEX IF NOT EXISTS profile_interests_pid ON profile_interests (profile_id)",
    "CREATE INDEX IF NOT EXISTS profile_touchpoints_pid ON profile_touchpoints (profile_id)",
    "CREATE INDEX IF NOT EXISTS profile_events_pid ON profile_events (profile_id)",
    "CREATE INDEX IF NOT EXISTS profile_events_position ON profile_events (position)",
    "CREATE OR REPLACE VIEW profile_traits AS "
    "SELECT s.profile_id, s.name, s.value, s.provenance FROM profile_stored_traits AS s "
    "WHERE s.name NOT IN (SELECT c.name FROM profile_computed_names AS c) "
    "UNION ALL SELECT profile_id, name, value, provenance FROM profile_computed_traits",
    "CREATE OR REPLACE VIEW profile_event_map AS SELECT profile_id, position FROM profile_events",
)


def _kinds(con: psycopg.Connection[Any], names: tuple[str, ...]) -> dict[str, str]:
    rows = con.execute("SELECT c.relname, c.relkind FROM pg_class c WHERE c.oid = ANY(ARRAY(SELECT to_regclass(n) "
                       "FROM unnest(%s::text[]) n))", [list(names)]).fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def ensure(con: psycopg.Connection[Any]) -> None:
    """Create the layout (``UNLOGGED``); one of an earlier version (tables ``profile_traits``,
    ``profile_event_map``, events without positions) is dropped first and built again."""
    with con.transaction():
        con.execute("SELECT pg_advisory_xact_lock(%s)", [SCHEMA_LOCK])
        kinds = _kinds(con, (*VIEWS, *ALL_TABLES, "profile_store_meta"))
        older = "profile_events" in kinds and not con.execute(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = 'profile_events' AND column_name = %s", [NEWEST_COLUMN]).fetchone()[0]  # type: ignore[index]
        if "profile_stored_traits" not in kinds or kinds.get("profile_traits") == "r" or older:
            for name in (*VIEWS, *ALL_TABLES):
                kind = kinds.get(name)
                if kind is not None:
                    con.execute(f"DROP {'VIEW' if kind == 'v' else 'TABLE'} IF EXISTS {name} CASCADE")  # ours
            if "profile_store_meta" in kinds:
                con.execute("DELETE FROM profile_store_meta WHERE name = %s", [META])
        for ddl in _TABLE_DDL:
            pg_projection_tables.create(con, ddl)  # UNLOGGED: rebuilt by replay
        for ddl in _OTHER_DDL:
            con.execute(ddl)


def position(con: psycopg.Connection[Any]) -> int | None:
    if con.execute("SELECT to_regclass('profile_store_meta') IS NULL").fetchone()[0]:  # type: ignore[index]
        return None
    row = con.execute("SELECT position, format FROM profile_store_meta WHERE name = %s", [META]).fetchone()
    return int(row[0]) if row and int(row[1]) == FORMAT else None


def clear(con: psycopg.Connection[Any]) -> None:
    if con.execute("SELECT to_regclass('profile_stored_traits') IS NULL").fetchone()[0]:  # type: ignore[index]
        return
    for name in ALL_TABLES:
        con.execute(f"DELETE FROM {name}")  # names are ours
    con.execute("DELETE FROM profile_store_meta WHERE name = %s", [META])


def _copy(con: psycopg.Connection[Any], name: str, table: Any) -> None:
    if table.num_rows == 0:
        return
    import pyarrow.csv as pa_csv

    buf = io.BytesIO()
    # strings quoted, nulls as unquoted empty fields (NULL to COPY)
    pa_csv.write_csv(table, buf, pa_csv.WriteOptions(include_header=False, quoting_style="needed"))
    cols = ", ".join(table.column_names)
    with con.cursor() as cur, cur.copy(f"COPY {name} ({cols}) FROM STDIN (FORMAT csv)") as copy:  # ours
        copy.write(buf.getvalue())


def write(con: psycopg.Connection[Any], w: TablesWrite) -> None:
    """As :func:`takt.storage.duckdb_segment_tables.write`, inside the caller's transaction."""
    if not (w.replace or w.building):
        rows = dict(con.execute("SELECT name, position FROM profile_store_meta WHERE name IN (%s, 'profiles')",
                                [META]).fetchall())
        if rows.get(META) != rows.get("profiles"):
            return
    if w.replace:
        for name in (*PROFILE_TABLES, "profile_events"):
            con.execute(f"TRUNCATE {name}")  # names are ours
    else:
        gone = sorted({*w.changed, *w.removed})
        if gone:
            for name in PROFILE_TABLES:
                con.execute(f"DELETE FROM {name} WHERE profile_id = ANY(%s)", [gone])  # names are ours
    for name in PROFILE_TABLES:
        _copy(con, name, w.rows[name])
    _copy(con, "profile_events", w.events)
    if w.owners.num_rows:
        pids = w.owners.column("profile_id").to_pylist()
        positions = w.owners.column("position").to_pylist()
        con.execute("UPDATE profile_events e SET profile_id = o.pid FROM unnest(%s::text[], %s::bigint[]) AS o(pid, pos) "
                    "WHERE e.position = o.pos AND e.profile_id <> o.pid", [pids, positions])
        con.execute("DELETE FROM profile_events WHERE profile_id = ANY(%s) AND NOT (position = ANY(%s))",
                    [sorted(set(pids)), positions])
    if w.removed and not w.replace:
        con.execute("DELETE FROM profile_events WHERE profile_id = ANY(%s)", [sorted(w.removed)])
    con.execute("INSERT INTO profile_store_meta (name, position, format) VALUES (%s, %s, %s) "
                "ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, format = EXCLUDED.format",
                [META, w.position, FORMAT])


def write_alone(pool: Any, w: TablesWrite) -> None:
    with pool.connection() as con, con.transaction():
        write(con, w)
