"""The profile store (:mod:`takt.profiles.store`) in PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import psycopg

from takt.profiles.store import LOAD_BATCH, META_NAME, STORE_FORMAT, TABLES, ProfileStore, StoreWrite


# ---- PostgreSQL ----
class Pool(Protocol):
    """What the PostgreSQL store needs from the storage's connection pool."""

    def connection(self) -> Any:  # a context manager giving a psycopg connection
        ...


# An advisory lock key for creating the tables ("takt" · "prof"), so concurrent starts do not race.
_PG_SCHEMA_LOCK = 0x74616B74_70726F66
_PG_DDL = (
    "CREATE TABLE IF NOT EXISTS profile_states (id TEXT PRIMARY KEY, position BIGINT NOT NULL, data BYTEA NOT NULL)",
    "CREATE TABLE IF NOT EXISTS identity_clusters (id TEXT PRIMARY KEY, data BYTEA NOT NULL, idx BYTEA NOT NULL)",
    "CREATE TABLE IF NOT EXISTS identity_members (identifier TEXT PRIMARY KEY, cluster TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS profile_store_meta (name TEXT PRIMARY KEY, position BIGINT NOT NULL, "
    "format INTEGER NOT NULL)",
)


class PostgresProfileStore(ProfileStore):
    """Rows in PostgreSQL; batches as arrays (``unnest``), one statement per table."""

    has_tables = True

    def __init__(self, pool: Pool):
        from takt.storage import pg_projection_tables

        self._pool = pool
        with pool.connection() as con:
            row = con.execute("SELECT to_regclass('identity_members') IS NOT NULL").fetchone()
            if not (row and row[0]):  # absent, or written by an earlier layout: rebuilt from the log
                with con.transaction():
                    con.execute("SELECT pg_advisory_xact_lock(%s)", [_PG_SCHEMA_LOCK])
                    if not con.execute("SELECT to_regclass('identity_members') IS NOT NULL").fetchone()[0]:
                        for table in TABLES:
                            con.execute(f"DROP TABLE IF EXISTS {table}")
                        for ddl in _PG_DDL:
                            pg_projection_tables.create(con, ddl)  # UNLOGGED: plaintext PII, rebuilt by replay
            pg_projection_tables.ensure_unlogged(con, list(TABLES))  # tables an earlier version logged
            from takt.storage import pg_segment_tables

            pg_segment_tables.ensure(con)

    def position(self) -> int | None:
        with self._pool.connection() as con:
            row = con.execute("SELECT position, format FROM profile_store_meta WHERE name = %s",
                              [META_NAME]).fetchone()
        return int(row[0]) if row and int(row[1]) == STORE_FORMAT else None

    def load(self, ids: Sequence[str]) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        with self._pool.connection() as con:
            for i in range(0, len(ids), LOAD_BATCH):
                rows = con.execute("SELECT id, data FROM profile_states WHERE id = ANY(%s)",
                                   [list(ids[i:i + LOAD_BATCH])]).fetchall()
                out.update((str(r[0]), bytes(r[1])) for r in rows)
        return out

    def load_keyed(self, ids: Sequence[str], subjects: Sequence[str]
                   ) -> dict[str, tuple[bytes, tuple[str, bytes] | None]]:
        out: dict[str, tuple[bytes, tuple[str, bytes] | None]] = {}
        with self._pool.connection() as con:
            for i in range(0, len(ids), LOAD_BATCH):
                rows = con.execute(
                    "SELECT p.id, p.data, k.key_id, k.wrapped FROM unnest(%s::text[], %s::text[]) AS m(id, subject) "
                    "JOIN profile_states p ON p.id = m.id LEFT JOIN privacy_subject_keys k ON k.subject = m.subject",
                    [list(ids[i:i + LOAD_BATCH]), list(subjects[i:i + LOAD_BATCH])]).fetchall()
                out.update((str(r[0]), (bytes(r[1]), (str(r[2]), bytes(r[3])) if r[2] is not None else None))
                           for r in rows)
        return out

    def profile_ids(self) -> list[str]:
        with self._pool.connection() as con:
            return [str(r[0]) for r in con.execute("SELECT id FROM profile_states ORDER BY id").fetchall()]

    def changed_since(self, position: int) -> list[str]:
        with self._pool.connection() as con:
            rows = con.execute("SELECT id FROM profile_states WHERE position > %s ORDER BY id",
                               [position]).fetchall()
        return [str(r[0]) for r in rows]

    def _stream(self, sql: str, batch: int) -> Iterator[tuple[Any, ...]]:
        # keyset pagination: no cursor held open across the caller's work
        after = ""
        while True:
            with self._pool.connection() as con:
                rows = con.execute(sql, [after, batch]).fetchall()
            if not rows:
                return
            yield from rows
            after = str(rows[-1][0])

    def profiles(self, batch: int = LOAD_BATCH) -> Iterator[tuple[str, bytes]]:
        for r in self._stream("SELECT id, data FROM profile_states WHERE id > %s ORDER BY id LIMIT %s", batch):
            yield str(r[0]), bytes(r[1])

    def clusters(self, batch: int = LOAD_BATCH) -> Iterator[bytes]:
        for r in self._stream("SELECT id, data FROM identity_clusters WHERE id > %s ORDER BY id LIMIT %s", batch):
            yield bytes(r[1])

    def cluster_index(self, batch: int = LOAD_BATCH) -> Iterator[tuple[str, bytes]]:
        for r in self._stream("SELECT id, idx FROM identity_clusters WHERE id > %s ORDER BY id LIMIT %s", batch):
            yield str(r[0]), bytes(r[1])

    def _by_key(self, sql: str, keys: Sequence[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        with self._pool.connection() as con:
            for i in range(0, len(keys), LOAD_BATCH):
                for r in con.execute(sql, [list(keys[i:i + LOAD_BATCH])]).fetchall():
                    out[str(r[0])] = r[1]
        return out

    def load_clusters(self, ids: Sequence[str]) -> dict[str, bytes]:
        rows = self._by_key("SELECT id, data FROM identity_clusters WHERE id = ANY(%s)", ids)
        return {k: bytes(v) for k, v in rows.items()}

    def members(self, identifiers: Sequence[str]) -> dict[str, str]:
        rows = self._by_key("SELECT identifier, cluster FROM identity_members WHERE identifier = ANY(%s)",
                            identifiers)
        return {k: str(v) for k, v in rows.items()}

    def write(self, w: StoreWrite) -> None:
        with self._pool.connection() as con, con.transaction():
            _pg_write(con, w)

    def clear(self) -> None:
        with self._pool.connection() as con, con.transaction():
            for table in TABLES:
                con.execute(f"DELETE FROM {table}")
            from takt.storage import pg_segment_tables

            pg_segment_tables.clear(con)

    def count(self) -> int:
        with self._pool.connection() as con:
            row = con.execute("SELECT count(*) FROM profile_states").fetchone()
        return int(row[0]) if row else 0

    def tables_position(self) -> int | None:
        from takt.storage import pg_segment_tables

        with self._pool.connection() as con:
            return pg_segment_tables.position(con)

    def write_tables(self, w: Any) -> None:
        from takt.storage import pg_segment_tables

        pg_segment_tables.write_alone(self._pool, w)


def _pg_write(con: psycopg.Connection[Any], w: StoreWrite) -> None:
    if w.replace:
        for table in TABLES[:3]:
            con.execute(f"DELETE FROM {table}")
    if w.removed_profiles:
        con.execute("DELETE FROM profile_states WHERE id = ANY(%s)", [w.removed_profiles])
    if w.removed_clusters:
        con.execute("DELETE FROM identity_clusters WHERE id = ANY(%s)", [w.removed_clusters])
    gone_c = [*w.removed_clusters, *(cid for cid, _, _ in w.clusters)]
    if gone_c:
        con.execute("DELETE FROM identity_members WHERE cluster = ANY(%s)", [gone_c])
    if w.members:
        con.execute("DELETE FROM identity_members WHERE identifier = ANY(%s)", [[m for m, _ in w.members]])
        con.execute("INSERT INTO identity_members (identifier, cluster) SELECT * FROM unnest(%s::text[], %s::text[])",
                    [[m for m, _ in w.members], [c for _, c in w.members]])
    if w.profiles:
        con.execute(
            "INSERT INTO profile_states (id, position, data) SELECT i, %s, d FROM unnest(%s::text[], %s::bytea[]) "
            "AS b(i, d) ON CONFLICT (id) DO UPDATE SET position = EXCLUDED.position, data = EXCLUDED.data",
            [w.position, [p for p, _ in w.profiles], [d for _, d in w.profiles]])
    if w.clusters:
        con.execute(
            "INSERT INTO identity_clusters (id, data, idx) SELECT * FROM unnest(%s::text[], %s::bytea[], %s::bytea[]) "
            "ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data, idx = EXCLUDED.idx",
            [[c for c, _, _ in w.clusters], [d for _, d, _ in w.clusters], [x for _, _, x in w.clusters]])
    if w.keys:
        con.execute("INSERT INTO privacy_subject_keys (subject, key_id, wrapped) SELECT * FROM "
                    "unnest(%s::text[], %s::text[], %s::bytea[]) ON CONFLICT (subject) DO NOTHING",
                    [[k[0] for k in w.keys], [k[1] for k in w.keys], [k[2] for k in w.keys]])
    if w.tables is not None:
        from takt.storage import pg_segment_tables

        pg_segment_tables.write(con, w.tables)
    con.execute(
        "INSERT INTO profile_store_meta (name, position, format) VALUES (%s, %s, %s) "
        "ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, format = EXCLUDED.format",
        [META_NAME, w.position, STORE_FORMAT])
