"""The profile store (:mod:`takt.profiles.store`) in the workspace's DuckDB file."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

import duckdb

from takt.profiles.store import LOAD_BATCH, META_NAME, STORE_FORMAT, TABLES, ProfileStore, StoreWrite
from takt.storage import duckdb_segment_tables

# ---- DuckDB ----
_DUCK_DDL = (
    "CREATE TABLE IF NOT EXISTS profile_states (id VARCHAR PRIMARY KEY, position BIGINT NOT NULL, data BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS identity_clusters (id VARCHAR PRIMARY KEY, data BLOB NOT NULL, idx BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS identity_members (identifier VARCHAR PRIMARY KEY, cluster VARCHAR NOT NULL)",
    "CREATE TABLE IF NOT EXISTS profile_store_meta (name VARCHAR PRIMARY KEY, position BIGINT NOT NULL, "
    "format INTEGER NOT NULL)",
)


class DuckDBProfileStore(ProfileStore):
    """Rows in the workspace's DuckDB file. Batches go through Arrow tables (one statement per table)."""

    has_tables = True

    def __init__(self, con: duckdb.DuckDBPyConnection, read_only: bool = False):
        self._con = con
        self._lock = threading.Lock()
        if not read_only:
            has_idx = con.execute("SELECT count(*) FROM information_schema.columns WHERE table_name = "
                                  "'identity_clusters' AND column_name = 'idx'").fetchone()
            if not (has_idx and has_idx[0]):  # absent, or written by an earlier layout: rebuilt from the log
                for table in TABLES:
                    con.execute(f"DROP TABLE IF EXISTS {table}")
            for ddl in _DUCK_DDL:
                con.execute(ddl)
            duckdb_segment_tables.ensure(con)

    def _cur(self) -> duckdb.DuckDBPyConnection:
        return self._con.cursor()

    def position(self) -> int | None:
        row = self._cur().execute(
            "SELECT position, format FROM profile_store_meta WHERE name = ?", [META_NAME]).fetchone()
        return int(row[0]) if row and int(row[1]) == STORE_FORMAT else None

    def load(self, ids: Sequence[str]) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        cur = self._cur()
        for i in range(0, len(ids), LOAD_BATCH):
            part = list(ids[i:i + LOAD_BATCH])
            rows = cur.execute("SELECT id, data FROM profile_states WHERE id IN (SELECT unnest(?::VARCHAR[]))",
                               [part]).fetchall()
            out.update((str(r[0]), bytes(r[1])) for r in rows)
        return out

    def load_keyed(self, ids: Sequence[str], subjects: Sequence[str]
                   ) -> dict[str, tuple[bytes, tuple[str, bytes] | None]]:
        out: dict[str, tuple[bytes, tuple[str, bytes] | None]] = {}
        cur = self._cur()
        for i in range(0, len(ids), LOAD_BATCH):
            rows = cur.execute(
                "SELECT p.id, p.data, k.key_id, k.wrapped FROM (SELECT unnest(?::VARCHAR[]) AS id, "
                "unnest(?::VARCHAR[]) AS subject) m JOIN profile_states p ON p.id = m.id "
                "LEFT JOIN privacy_subject_keys k ON k.subject = m.subject",
                [list(ids[i:i + LOAD_BATCH]), list(subjects[i:i + LOAD_BATCH])]).fetchall()
            out.update((str(r[0]), (bytes(r[1]), (str(r[2]), bytes(r[3])) if r[2] is not None else None))
                       for r in rows)
        return out

    def profile_ids(self) -> list[str]:
        return [str(r[0]) for r in self._cur().execute("SELECT id FROM profile_states ORDER BY id").fetchall()]

    def changed_since(self, position: int) -> list[str]:
        rows = self._cur().execute("SELECT id FROM profile_states WHERE position > ? ORDER BY id",
                                   [position]).fetchall()
        return [str(r[0]) for r in rows]

    def profiles(self, batch: int = LOAD_BATCH) -> Iterator[tuple[str, bytes]]:
        cur = self._cur()
        cur.execute("SELECT id, data FROM profile_states ORDER BY id")
        while rows := cur.fetchmany(batch):
            yield from ((str(r[0]), bytes(r[1])) for r in rows)

    def clusters(self, batch: int = LOAD_BATCH) -> Iterator[bytes]:
        cur = self._cur()
        cur.execute("SELECT data FROM identity_clusters ORDER BY id")
        while rows := cur.fetchmany(batch):
            yield from (bytes(r[0]) for r in rows)

    def cluster_index(self, batch: int = LOAD_BATCH) -> Iterator[tuple[str, bytes]]:
        cur = self._cur()
        cur.execute("SELECT id, idx FROM identity_clusters ORDER BY id")
        while rows := cur.fetchmany(batch):
            yield from ((str(r[0]), bytes(r[1])) for r in rows)

    def load_clusters(self, ids: Sequence[str]) -> dict[str, bytes]:
        return self._by_key("SELECT id, data FROM identity_clusters WHERE id IN (SELECT unnest(?::VARCHAR[]))", ids)

    def members(self, identifiers: Sequence[str]) -> dict[str, str]:
        rows = self._by_key("SELECT identifier, cluster FROM identity_members "
                            "WHERE identifier IN (SELECT unnest(?::VARCHAR[]))", identifiers)
        return {k: str(v) for k, v in rows.items()}

    def _by_key(self, sql: str, keys: Sequence[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        cur = self._cur()
        for i in range(0, len(keys), LOAD_BATCH):
            for r in cur.execute(sql, [list(keys[i:i + LOAD_BATCH])]).fetchall():
                out[str(r[0])] = bytes(r[1]) if isinstance(r[1], bytes | bytearray | memoryview) else r[1]
        return out

    def write(self, w: StoreWrite) -> None:
        import pyarrow as pa

        with self._lock:
            cur = self._cur()
            cur.execute("BEGIN TRANSACTION")
            try:
                if w.replace:
                    for table in TABLES[:3]:
                        cur.execute(f"DELETE FROM {table}")
                gone_p = [*w.removed_profiles, *(pid for pid, _ in w.profiles)]
                gone_c = [*w.removed_clusters, *(cid for cid, _, _ in w.clusters)]
                if gone_p and not w.replace:
                    cur.execute("DELETE FROM profile_states WHERE id IN (SELECT unnest(?::VARCHAR[]))", [gone_p])
                if gone_c and not w.replace:
                    cur.execute("DELETE FROM identity_clusters WHERE id IN (SELECT unnest(?::VARCHAR[]))",
                                [gone_c])
                    cur.execute("DELETE FROM identity_members WHERE cluster IN (SELECT unnest(?::VARCHAR[]))",
                                [gone_c])
                if w.members and not w.replace:
                    cur.execute("DELETE FROM identity_members WHERE identifier IN (SELECT unnest(?::VARCHAR[]))",
                                [[m for m, _ in w.members]])
                if w.members:
                    mrows = pa.table({"identifier": [m for m, _ in w.members], "cluster": [c for _, c in w.members]})
                    cur.register("takt_member_rows", mrows)
                    cur.execute("INSERT INTO identity_members SELECT identifier, cluster FROM takt_member_rows")
                    cur.unregister("takt_member_rows")
                if w.profiles:
                    prows = pa.table({"id": [p for p, _ in w.profiles],
                                      "position": pa.array([w.position] * len(w.profiles), pa.int64()),
                                      "data": pa.array([d for _, d in w.profiles], pa.binary())})
                    cur.register("takt_profile_rows", prows)
                    cur.execute("INSERT INTO profile_states SELECT id, position, data FROM takt_profile_rows")
                    cur.unregister("takt_profile_rows")
                if w.clusters:
                    crows = pa.table({"id": [c for c, _, _ in w.clusters],
                                      "data": pa.array([d for _, d, _ in w.clusters], pa.binary()),
                                      "idx": pa.array([x for _, _, x in w.clusters], pa.binary())})
                    cur.register("takt_cluster_rows", crows)
                    cur.execute("INSERT INTO identity_clusters SELECT id, data, idx FROM takt_cluster_rows")
                    cur.unregister("takt_cluster_rows")
                if w.keys:
                    cur.executemany("INSERT INTO privacy_subject_keys (subject, key_id, wrapped) VALUES (?, ?, ?) "
                                    "ON CONFLICT DO NOTHING", [list(k) for k in w.keys])
                if w.tables is not None:
                    duckdb_segment_tables.write(cur, w.tables)
                cur.execute("DELETE FROM profile_store_meta WHERE name = ?", [META_NAME])
                cur.execute("INSERT INTO profile_store_meta VALUES (?, ?, ?)", [META_NAME, w.position, STORE_FORMAT])
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise

    def clear(self) -> None:
        with self._lock:
            cur = self._cur()
            cur.execute("BEGIN TRANSACTION")
            try:
                for table in TABLES:
                    cur.execute(f"DELETE FROM {table}")
                duckdb_segment_tables.clear(cur)
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise

    def count(self) -> int:
        row = self._cur().execute("SELECT count(*) FROM profile_states").fetchone()
        return int(row[0]) if row else 0

    def tables_position(self) -> int | None:
        return duckdb_segment_tables.position(self._cur())

    def write_tables(self, w: Any) -> None:
        with self._lock:
            duckdb_segment_tables.write_alone(self._con, w)
