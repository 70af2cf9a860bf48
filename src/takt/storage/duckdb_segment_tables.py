"""The segment contract tables in a DuckDB workspace file, kept with the log position they reflect.

Layout (``docs/segments.md``, "the table contract"):

* tables ``profiles``, ``profile_stored_traits``, ``profile_interests``, ``profile_touchpoints`` (one set of rows
  per profile, replaced when the profile changes) and ``profile_events`` (one row per event of a person, with its
  ``position``: appended, re-keyed when people merge or split);
* ``profile_computed_traits`` / ``profile_computed_names``: the rows of computed traits at some ``now``
  (:func:`takt.segments.computed.materialize_computed`), which replace stored traits of the same names;
* views ``profile_traits`` (stored traits not overridden, plus computed ones) and ``profile_event_map``.

The position is a row of ``profile_store_meta`` (``name = 'segment_tables'``); a layout of another format is
dropped and built again. Writes run inside the caller's transaction (the profile store's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from takt.projections.facts import TablesWrite

FORMAT = 2
"""2: ``profile_events`` has ``touchpoint``, ``source``, ``received_at``, ``hour_of_week`` (analytics)."""
META = "segment_tables"
NEWEST_COLUMN = "hour_of_week"
"""A column the current format added: a layout without it is older (even with no position row left)."""

PROFILE_TABLES = ("profiles", "profile_stored_traits", "profile_interests", "profile_touchpoints")
ALL_TABLES = (*PROFILE_TABLES, "profile_events", "profile_computed_traits", "profile_computed_names")
VIEWS = ("profile_traits", "profile_event_map")

_DDL = (
    "CREATE TABLE IF NOT EXISTS profile_store_meta (name VARCHAR PRIMARY KEY, position BIGINT NOT NULL, "
    "format INTEGER NOT NULL)",  # as takt.profiles.store creates it (a bare connection has no profile store)
    "CREATE TABLE IF NOT EXISTS profiles (profile_id VARCHAR, first_seen TIMESTAMPTZ, last_seen TIMESTAMPTZ, "
    "top_interest VARCHAR, interest_shifted_at TIMESTAMPTZ)",
    "CREATE TABLE IF NOT EXISTS profile_stored_traits (profile_id VARCHAR, name VARCHAR, value VARCHAR, "
    "provenance VARCHAR)",
    "CREATE TABLE IF NOT EXISTS profile_interests (profile_id VARCHAR, key VARCHAR, score DOUBLE, "
    "as_of TIMESTAMPTZ, half_life_days DOUBLE)",
    "CREATE TABLE IF NOT EXISTS profile_touchpoints (profile_id VARCHAR, touchpoint VARCHAR, count BIGINT, "
    "last_at TIMESTAMPTZ)",
    "CREATE TABLE IF NOT EXISTS profile_events (profile_id VARCHAR, position BIGINT, kind VARCHAR, event VARCHAR, "
    "name VARCHAR, ts TIMESTAMPTZ, properties VARCHAR, touchpoint VARCHAR, source VARCHAR, received_at TIMESTAMPTZ, "
    "hour_of_week INTEGER)",
    "CREATE TABLE IF NOT EXISTS profile_computed_traits (profile_id VARCHAR, name VARCHAR, value VARCHAR, "
    "provenance VARCHAR)",
    "CREATE TABLE IF NOT EXISTS profile_computed_names (name VARCHAR)",
    "CREATE OR REPLACE VIEW profile_traits AS "
    "SELECT s.profile_id, s.name, s.value, s.provenance FROM profile_stored_traits AS s "
    "WHERE s.name NOT IN (SELECT c.name FROM profile_computed_names AS c) "
    "UNION ALL SELECT profile_id, name, value, provenance FROM profile_computed_traits",
    "CREATE OR REPLACE VIEW profile_event_map AS SELECT profile_id, position FROM profile_events",
)


def _objects(cur: Any) -> dict[str, str]:
    rows = cur.execute("SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = "
                       "current_schema()").fetchall()
    return {str(r[0]): str(r[1]).upper() for r in rows}


def _has_column(cur: Any, table: str, column: str) -> bool:
    return bool(cur.execute("SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() "
                            "AND table_name = ? AND column_name = ?", [table, column]).fetchone()[0])


def _format(cur: Any) -> int | None:
    if "profile_store_meta" not in _objects(cur):
        return None
    row = cur.execute("SELECT format FROM profile_store_meta WHERE name = ?", [META]).fetchone()
    return int(row[0]) if row else None


def ensure(con: Any) -> None:
    """Create the layout; one of an earlier version (tables ``profile_traits``/``profile_event_map``, events
    without positions) is dropped first (the tables are then built again from the profile store and the log)."""
    cur = con.cursor()
    objects = _objects(cur)
    current = ("profile_stored_traits" in objects and _format(cur) in (None, FORMAT)
               and ("profile_events" not in objects or _has_column(cur, "profile_events", NEWEST_COLUMN)))
    if not current:
        for name in (*VIEWS, *ALL_TABLES):
            kind = objects.get(name)
            if kind is not None:
                cur.execute(f"DROP {'VIEW' if 'VIEW' in kind else 'TABLE'} {name}")  # names are ours
        if "profile_store_meta" in objects:
            cur.execute("DELETE FROM profile_store_meta WHERE name = ?", [META])
    for ddl in _DDL:
        cur.execute(ddl)


def position(cur: Any) -> int | None:
    """The log position the tables reflect (``None``: never written, or another format)."""
    if "profile_store_meta" not in _objects(cur):
        return None
    row = cur.execute("SELECT position, format FROM profile_store_meta WHERE name = ?", [META]).fetchone()
    return int(row[0]) if row and int(row[1]) == FORMAT else None


def clear(cur: Any) -> None:
    """Every row gone (inside the caller's transaction)."""
    for name in ALL_TABLES:
        cur.execute(f"DELETE FROM {name}")  # names are ours
    cur.execute("DELETE FROM profile_store_meta WHERE name = ?", [META])


def _insert(cur: Any, name: str, table: Any) -> None:
    if table.num_rows == 0:
        return
    cur.register("takt_table_rows", table)
    cols = ", ".join(table.column_names)
    cur.execute(f"INSERT INTO {name} ({cols}) SELECT {cols} FROM takt_table_rows")  # names are ours
    cur.unregister("takt_table_rows")


def _ids(cur: Any, sql: str, ids: list[str]) -> None:
    if ids:
        cur.execute(sql, [ids])


def _in_step(cur: Any) -> bool:
    rows = dict(cur.execute("SELECT name, position FROM profile_store_meta WHERE name IN (?, 'profiles')",
                            [META]).fetchall())
    return rows.get(META) == rows.get("profiles")


def write(cur: Any, w: TablesWrite) -> None:
    """Apply ``w`` inside the caller's transaction: replace the changed profiles' rows, delete the removed
    ones', append the new events' rows, re-key the events of re-folded profiles; record the position. An
    incremental write to tables that do not reflect the profile store's position (an interrupted build) is
    skipped: they stay marked as behind until they are built whole."""
    if not (w.replace or w.building) and not _in_step(cur):
        return
    if w.replace:
        for name in (*PROFILE_TABLES, "profile_events"):
            cur.execute(f"DELETE FROM {name}")  # names are ours
    else:
        gone = sorted({*w.changed, *w.removed})
        for name in PROFILE_TABLES:
            _ids(cur, f"DELETE FROM {name} WHERE profile_id IN (SELECT unnest(?::VARCHAR[]))", gone)  # ours
    for name in PROFILE_TABLES:
        _insert(cur, name, w.rows[name])
    _insert(cur, "profile_events", w.events)
    if w.owners.num_rows:
        cur.register("takt_owner_rows", w.owners)
        cur.execute("UPDATE profile_events SET profile_id = o.profile_id FROM takt_owner_rows AS o "
                    "WHERE profile_events.position = o.position AND profile_events.profile_id <> o.profile_id")
        cur.execute("DELETE FROM profile_events WHERE profile_id IN (SELECT DISTINCT profile_id FROM takt_owner_rows) "
                    "AND position NOT IN (SELECT position FROM takt_owner_rows)")
        cur.unregister("takt_owner_rows")
    if not w.replace:
        _ids(cur, "DELETE FROM profile_events WHERE profile_id IN (SELECT unnest(?::VARCHAR[]))", sorted(w.removed))
    cur.execute("DELETE FROM profile_store_meta WHERE name = ?", [META])
    cur.execute("INSERT INTO profile_store_meta VALUES (?, ?, ?)", [META, w.position, FORMAT])


def write_alone(con: Any, w: TablesWrite) -> None:
    """:func:`write` in a transaction of its own."""
    cur = con.cursor()
    cur.execute("BEGIN TRANSACTION")
    try:
        write(cur, w)
        cur.execute("COMMIT")
    except BaseException:
        cur.execute("ROLLBACK")
        raise
