"""A narrow SQL helper over either backend, for the model layer's own small tables (offers, CLV scores).

The storage classes own the event log, keys and snapshots; tables that only models read and write are created
and used here, through the backend's own connection (DuckDB) or connection pool (PostgreSQL). SQL is written
with ``?`` placeholders and DuckDB types; :class:`Sql` adapts both for PostgreSQL.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pyarrow as pa

from takt.errors import TaktError
from takt.storage.base import Storage

_LOCKS: dict[int, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock_for(obj: object) -> threading.Lock:
    with _LOCKS_GUARD:
        lock = _LOCKS.get(id(obj))
        if lock is None:
            lock = _LOCKS[id(obj)] = threading.Lock()
        return lock


class Tx:
    """Statements inside one transaction."""

    def __init__(self, backend: str, cur: Any):
        self.backend = backend
        self.cur = cur

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self.backend == "postgres":
            cur = self.cur.execute(_pg(sql), list(params))
            return list(cur.fetchall()) if cur.description is not None else []
        self.cur.execute(sql, list(params))
        return list(self.cur.fetchall()) if self.cur.description is not None else []

    def insert_rows(self, table: str, data: pa.Table) -> None:
        """Append an Arrow table's rows to ``table`` (same column names)."""
        cols = ", ".join(f'"{c}"' for c in data.column_names)
        if self.backend == "postgres":
            with self.cur.cursor().copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                for row in data.to_pylist():
                    copy.write_row([row[c] for c in data.column_names])
            return
        self.cur.register("_takt_rows", data)
        try:
            self.cur.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _takt_rows")
        finally:
            try:
                self.cur.unregister("_takt_rows")
            except Exception:  # an aborted transaction refuses it; the original error matters
                pass


def _pg(sql: str) -> str:
    return sql.replace("?", "%s").replace(" DOUBLE", " DOUBLE PRECISION").replace(" BLOB", " BYTEA")


class Sql:
    def __init__(self, storage: Storage):
        self.backend = storage.backend
        if self.backend == "duckdb":
            self._con: Any = storage.con  # type: ignore[attr-defined]
        elif self.backend == "postgres":
            self._pool: Any = storage._pool  # type: ignore[attr-defined]
        else:
            raise TaktError(f"storage backend {self.backend!r} cannot hold model tables", code="unsupported",
                            status=500)

    @contextmanager
    def transaction(self, lock_table: str | None = None) -> Iterator[Tx]:
        """One transaction; ``lock_table`` serializes writers of that table (across processes on PostgreSQL)."""
        if self.backend == "postgres":
            with self._pool.connection() as con, con.transaction():
                if lock_table:
                    con.execute(f"LOCK TABLE {lock_table} IN SHARE ROW EXCLUSIVE MODE")
                yield Tx("postgres", con)
            return
        with _lock_for(self._con):
            cur = self._con.cursor()
            cur.execute("BEGIN TRANSACTION")
            try:
                yield Tx("duckdb", cur)
                cur.execute("COMMIT")
            except BaseException:
                try:
                    cur.execute("ROLLBACK")
                except Exception:
                    pass
                raise

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self.backend == "postgres":
            with self._pool.connection() as con:
                return list(con.execute(_pg(sql), list(params)).fetchall())
        return list(self._con.cursor().execute(sql, list(params)).fetchall())

    def has_table(self, name: str) -> bool:
        rows = self.query("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name])
        return bool(rows and rows[0][0])

    def ensure(self, name: str, ddl: str) -> None:
        """Create a table if it is missing (concurrent creators on PostgreSQL are serialized)."""
        if self.has_table(name):
            return
        if self.backend == "postgres":
            with self._pool.connection() as con, con.transaction():
                con.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"takt.table.{name}"])
                con.execute(_pg(ddl))
            return
        with _lock_for(self._con):
            self._con.cursor().execute(ddl)
