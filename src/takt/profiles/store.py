"""Where profile state lives: one row per profile and one per identity cluster, with the log position they
reflect.

The :class:`~takt.profiles.projector.Projector` keeps a bounded cache of profile states and loads the others
from here; the runner writes what changed (:meth:`Projector.take_changes`) in one transaction together with
the position it reflects, so a restarted process continues from that position without reading every profile
back. Rows:

* ``profile_states (id, position, data)``: :meth:`ProfileState.to_blob` (positions, event keys, then JSON).
* ``identity_clusters (id, data, idx)``: :meth:`IdentityGraph.record` as JSON, and what must be in memory
  for the whole graph (its merges: redirects of absorbed ids, the merge index; its members' separations) as a
  small JSON ``idx`` read at start without the rest.
* ``identity_members (identifier, cluster)``: which cluster holds an identifier (looked up per chunk of events).
* ``profile_store_meta (name, position, format)``: the position every row reflects; ``format`` changes when
  the row layout does (a store in another format is treated as empty: the projection is rebuilt).

Each backend creates its store with the storage (``storage.profiles``). The store holds no rules: what a row
means is the projector's business.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from takt.settings import register
from takt.storage import duckdb_segment_tables

if TYPE_CHECKING:
    import duckdb
    import psycopg

STORE_FORMAT = 3
META_NAME = "profiles"
LOAD_BATCH = 2_000
DEFAULT_CACHE_SIZE = 20_000


def _at_least_100(v: Any) -> None:
    if v < 100:
        raise ValueError("must be at least 100")


register("profiles.cache_size", DEFAULT_CACHE_SIZE,
         "Profile states the server keeps in memory (least recently used leave first; the others are read from "
         "the workspace's profile store when needed). About 10-30 KB each.", check=_at_least_100)


@dataclass
class StoreWrite:
    """One transaction's worth of changes: rows to (re)write, rows to delete, and the position they reflect."""

    position: int
    profiles: list[tuple[str, bytes]] = field(default_factory=list)
    removed_profiles: list[str] = field(default_factory=list)
    clusters: list[tuple[str, bytes, bytes]] = field(default_factory=list)
    """(id, row, idx) per changed cluster."""
    removed_clusters: list[str] = field(default_factory=list)
    members: list[tuple[str, str]] = field(default_factory=list)
    """(identifier, cluster id) of every member of a changed cluster (their rows are replaced)."""
    replace: bool = False
    """Delete every row first (the write holds the whole state)."""
    keys: list[tuple[str, str, bytes]] = field(default_factory=list)
    """(subject id, key id, wrapped key) rows for ``privacy_subject_keys``: keys the rows are sealed under,
    made for this write (:mod:`takt.profiles.sealed`)."""
    tables: Any = None
    """The segment contract tables' changes (:class:`takt.projections.facts.TablesWrite`), written in the same
    transaction; ``None`` leaves them as they are."""


class ProfileStore(ABC):
    """Per-row profile and identity state with the log position it reflects."""

    @abstractmethod
    def position(self) -> int | None:
        """The position the rows reflect; ``None`` when nothing was written (or in another format)."""

    @abstractmethod
    def load(self, ids: Sequence[str]) -> dict[str, bytes]:
        """The state rows of these profile ids (ids without a row are left out)."""

    def load_keyed(self, ids: Sequence[str], subjects: Sequence[str]
                   ) -> dict[str, tuple[bytes, tuple[str, bytes] | None]]:
        """:meth:`load` together with each row's ``privacy_subject_keys`` row (``subjects[i]`` is the subject id
        of ``ids[i]``; ``None`` when it has none) in one query: a cold read of a sealed row costs one round trip,
        not two (:mod:`takt.profiles.sealed`)."""
        raise NotImplementedError

    @abstractmethod
    def profile_ids(self) -> list[str]:
        """Ids of every stored profile state, sorted."""

    @abstractmethod
    def profiles(self, batch: int = LOAD_BATCH) -> Iterator[tuple[str, bytes]]:
        """Every profile state row, by id."""

    @abstractmethod
    def changed_since(self, position: int) -> list[str]:
        """Ids of the profile state rows written at a position after ``position`` (sorted): every profile an
        event after ``position`` changed, once it is written (a row carries the position of the write that
        last changed it, never less than the event's). Profiles deleted since are not in it."""

    @abstractmethod
    def clusters(self, batch: int = LOAD_BATCH) -> Iterator[bytes]:
        """Every identity cluster row."""

    @abstractmethod
    def cluster_index(self, batch: int = LOAD_BATCH) -> Iterator[tuple[str, bytes]]:
        """(id, idx) of every identity cluster: what the graph keeps in memory."""

    @abstractmethod
    def load_clusters(self, ids: Sequence[str]) -> dict[str, bytes]:
        """The rows of these cluster ids (ids without a row are left out)."""

    @abstractmethod
    def members(self, identifiers: Sequence[str]) -> dict[str, str]:
        """identifier → cluster id, for the identifiers some cluster holds."""

    @abstractmethod
    def write(self, w: StoreWrite) -> None:
        """Apply ``w`` atomically: all of it, with its position, or nothing."""

    @abstractmethod
    def clear(self) -> None:
        """Forget everything (a rebuild starts from position 0)."""

    @abstractmethod
    def count(self) -> int:
        """How many profile state rows there are."""

    has_tables = False
    """Whether the store keeps the segment contract tables beside its rows (the workspace stores do)."""

    def tables_position(self) -> int | None:
        """The position the segment contract tables reflect (``None``: not built, or no tables)."""
        return None

    def write_tables(self, w: Any) -> None:
        """Apply a :class:`takt.projections.facts.TablesWrite` alone, atomically (a full build)."""
        raise NotImplementedError("this profile store keeps no segment tables")


# ---- DuckDB ----
_DUCK_DDL = (
    "CREATE TABLE IF NOT EXISTS profile_states (id VARCHAR PRIMARY KEY, position BIGINT NOT NULL, data BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS identity_clusters (id VARCHAR PRIMARY KEY, data BLOB NOT NULL, idx BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS identity_members (identifier VARCHAR PRIMARY KEY, cluster VARCHAR NOT NULL)",
    "CREATE TABLE IF NOT EXISTS profile_store_meta (name VARCHAR PRIMARY KEY, position BIGINT NOT NULL, "
    "format INTEGER NOT NULL)",
)
_TABLES = ("profile_states", "identity_clusters", "identity_members", "profile_store_meta")


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
                for table in _TABLES:
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
                    for table in _TABLES[:3]:
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
                for table in _TABLES:
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
                        for table in _TABLES:
                            con.execute(f"DROP TABLE IF EXISTS {table}")
                        for ddl in _PG_DDL:
                            pg_projection_tables.create(con, ddl)  # UNLOGGED: plaintext PII, rebuilt by replay
            pg_projection_tables.ensure_unlogged(con, list(_TABLES))  # tables an earlier version logged
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
            for table in _TABLES:
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
        for table in _TABLES[:3]:
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
