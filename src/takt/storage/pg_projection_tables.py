"""PostgreSQL tables that hold projections of personal data: created ``UNLOGGED``, vacuumed after erasures.

Profile state, the identity graph, projection snapshots and the segment contract tables are plaintext copies
of what the (sealed) event log holds: traits such as email addresses and names, identifiers, decrypted event
properties. They are folds of the log, rebuildable by replay, so on PostgreSQL they need no write-ahead log:
as ``UNLOGGED`` tables no byte of them is written to ``pg_wal`` (nor to WAL archives or streaming replicas).
After a crash PostgreSQL empties them; the profile runner then finds no stored position and folds the log
again (:meth:`takt.projections.runner.ProfileRunner.load`, and ``_persist`` for a process that lived through
the server's restart).

Erasure deletes and rewrites their rows; the old row versions stay in the table files as dead tuples until
``VACUUM``. :func:`vacuum_projection_tables` rewrites every such table (``VACUUM FULL``: fresh files, dead
tuples gone) and asks for a ``CHECKPOINT``. See ``docs/privacy.md`` for the list and the reasons.
"""

from __future__ import annotations

import re
import time
from typing import Any

import psycopg

# Every table that may hold plaintext personal data derived from the log. Hashes, key ids, profile ids (hashes
# of an identifier with a message id), scores and audit metadata stay logged: see docs/privacy.md.
PROJECTION_TABLES: list[str] = [
    "profile_states", "identity_clusters", "identity_members", "profile_store_meta",  # takt.profiles.store
    "projection_snapshots",  # takt.storage.postgres
    "profiles", "profile_stored_traits", "profile_interests", "profile_touchpoints", "profile_events",
    "profile_computed_traits", "profile_computed_names",  # takt.storage.pg_segment_tables (segment contract tables;
    # profile_traits and profile_event_map are views over them)
]

# Their columns that hold personal data get no planner statistics (``SET STATISTICS 0``): ``ANALYZE`` (also
# autovacuum's) would otherwise copy most-common values (email addresses…) into the logged catalog
# ``pg_statistic``, and so into the WAL.
PII_COLUMNS: dict[str, tuple[str, ...]] = {
    "profile_states": ("data",), "identity_clusters": ("data", "idx"), "identity_members": ("identifier",),
    "projection_snapshots": ("data",), "profile_stored_traits": ("value",),
    "profile_computed_traits": ("value",), "profile_interests": ("key",),
    "profile_touchpoints": ("touchpoint",), "profile_events": ("event", "name", "properties"),
}

_CREATE = re.compile(r"^(\s*)CREATE\s+TABLE\s+(IF\s+NOT\s+EXISTS\s+)?([A-Za-z_][A-Za-z0-9_]*)", re.IGNORECASE)


def register(name: str) -> None:
    """Add a table to those made ``UNLOGGED`` and vacuumed after erasures (idempotent)."""
    if name not in PROJECTION_TABLES:
        PROJECTION_TABLES.append(name)


def unlogged(ddl: str) -> str:
    """``CREATE TABLE [IF NOT EXISTS] name …`` as ``CREATE UNLOGGED TABLE …``; the table is registered. Other
    statements are returned unchanged."""
    m = _CREATE.match(ddl)
    if m is None:
        return ddl
    register(m.group(3))
    return f"{m.group(1)}CREATE UNLOGGED TABLE {m.group(2) or ''}{m.group(3)}{ddl[m.end():]}"


def create(con: psycopg.Connection[Any], ddl: str) -> None:
    """Run one ``CREATE TABLE`` as ``UNLOGGED``; a table an earlier version created logged is converted
    (``ALTER TABLE … SET UNLOGGED``, idempotent)."""
    con.execute(unlogged(ddl))
    m = _CREATE.match(ddl)
    if m is not None:
        ensure_unlogged(con, [m.group(3)])


def no_statistics(con: psycopg.Connection[Any], names: list[str]) -> None:
    """``ALTER COLUMN … SET STATISTICS 0`` on the personal-data columns of ``names`` that still have statistics
    (idempotent; no lock taken when nothing is left to do)."""
    pairs = [(t, c) for t in names for c in PII_COLUMNS.get(t, ())]
    if not pairs:
        return
    rows = con.execute(
        "SELECT c.relname, a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
        "JOIN unnest(%s::text[], %s::text[]) AS w(t, col) ON c.oid = to_regclass(w.t) AND a.attname = w.col "
        "WHERE COALESCE(a.attstattarget, -1) <> 0", [[p[0] for p in pairs], [p[1] for p in pairs]]).fetchall()
    for table, column in rows:
        _alter(con, f'ALTER TABLE "{table}" ALTER COLUMN "{column}" SET STATISTICS 0')  # names are ours


def ensure_unlogged(con: psycopg.Connection[Any], names: list[str] | None = None) -> list[str]:
    """Convert those of ``names`` (default: every registered table) that exist as logged tables; returns the
    converted names. Needs the tables' owner: a role that does not own them leaves them as they are."""
    names = PROJECTION_TABLES if names is None else names
    rows = con.execute(
        "SELECT c.relname FROM pg_class c WHERE c.oid = ANY(ARRAY(SELECT to_regclass(n) FROM unnest(%s::text[]) n)) "
        "AND c.relpersistence = 'p'", [list(names)]).fetchall()
    converted = [str(r[0]) for r in rows if _alter(con, f'ALTER TABLE "{r[0]}" SET UNLOGGED')]  # names are ours
    no_statistics(con, list(names))
    return converted


def _alter(con: psycopg.Connection[Any], sql: str) -> bool:
    """Run one ``ALTER``; ``False`` when the role does not own the table (the owner's next open converts it).
    A savepoint keeps a surrounding transaction usable."""
    try:
        with con.transaction():
            con.execute(sql)
    except psycopg.errors.InsufficientPrivilege:
        return False
    return True


def existing(con: psycopg.Connection[Any]) -> list[str]:
    """The registered tables present in the database."""
    rows = con.execute("SELECT n FROM unnest(%s::text[]) n WHERE to_regclass(n) IS NOT NULL",
                       [list(PROJECTION_TABLES)]).fetchall()
    return [str(r[0]) for r in rows]


def wait_for_older_snapshots(con: psycopg.Connection[Any], timeout_s: float = 60.0) -> bool:
    """Wait until no other session of this database still holds a snapshot taken before now; ``False`` when
    one still did after ``timeout_s``.

    ``VACUUM FULL`` keeps every dead row version that a running transaction may still see: one query of
    another thread that started just before the erasure committed (a log read, a contactability tick, an
    audit insert) would leave the erased person's rows in the rewritten files. Sessions that start after this
    point cannot see them, so once every older snapshot is gone the rewrite drops them all."""
    row = con.execute("SELECT (pg_current_xact_id()::text::numeric % 4294967296)::text").fetchone()
    fence = str(row[0]) if row else "0"
    deadline = time.monotonic() + timeout_s
    while True:
        row = con.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND datname = current_database() "
            "AND backend_xmin IS NOT NULL AND age(backend_xmin) >= age(%s::xid)", [fence]).fetchone()
        if not row or not row[0]:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)


def vacuum_projection_tables(url_or_con: Any) -> list[str]:
    """``VACUUM FULL`` every registered table present (the table files are rewritten without dead tuples) and
    ``CHECKPOINT`` (skipped without the privilege: the next automatic checkpoint does the same). Needs an
    autocommit connection (``VACUUM`` cannot run in a transaction); returns the tables vacuumed."""
    con = url_or_con
    own = isinstance(url_or_con, str)
    if own:
        con = psycopg.connect(url_or_con, autocommit=True)
    try:
        tables = existing(con)
        wait_for_older_snapshots(con)
        for name in tables:
            con.execute(f'VACUUM FULL "{name}"')  # names are ours
        try:
            con.execute("CHECKPOINT")
        except psycopg.errors.InsufficientPrivilege:
            pass
        return tables
    finally:
        if own:
            con.close()
