""":class:`~takt.storage.session.SqlSession` on a DuckDB connection (a cursor of the storage's connection, so
each thread has its own)."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import duckdb
import pyarrow as pa
import sqlglot

from takt.storage.session import SqlSession, UniqueViolation

logger = logging.getLogger(__name__)

_QUERY = re.compile(r"\s*\(?\s*(SELECT|WITH|VALUES|FROM|TABLE|SHOW|DESCRIBE|PRAGMA|EXPLAIN)\b", re.IGNORECASE)
_RETURNING = re.compile(r"\bRETURNING\b", re.IGNORECASE)


class DuckDBSession(SqlSession):
    dialect = "duckdb"

    def __init__(self, cur: duckdb.DuckDBPyConnection, locks: Locks | None = None):
        self._cur = cur
        self._locks = locks
        self.held: list[threading.Lock] = []

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            self._cur.execute(sql, list(params))
        except duckdb.ConstraintException as e:
            if "duplicate key" not in str(e).lower():
                raise
            raise UniqueViolation(str(e)) from e
        if not _QUERY.match(sql) and not _RETURNING.search(sql):
            return []  # DuckDB answers INSERT/UPDATE/DELETE with a row count; PostgreSQL with no rows
        return [tuple(r) for r in self._cur.fetchall()]

    def native(self, sql: str) -> list[tuple[Any, ...]]:
        return self.execute(sql)

    def script(self, sql: str) -> None:
        for statement in sqlglot.parse(sql, read="duckdb"):
            if statement is not None:
                self._cur.execute(statement.sql(dialect="duckdb"))

    def insert(self, table: str, rows: pa.Table) -> None:
        self._cur.register("_takt_insert", rows)
        try:
            cols = ", ".join(f'"{c}"' for c in rows.column_names)
            self._cur.execute(f'INSERT INTO "{table}" ({cols}) SELECT {cols} FROM _takt_insert')
        finally:
            self._cur.unregister("_takt_insert")

    def index(self, table: str, columns: Sequence[str]) -> None:
        """DuckDB's zone maps serve look-ups by a column; an ART index would cost memory and every insert."""

    def lock(self, key: int) -> None:
        """One process owns a DuckDB file: the lock is a thread lock of the storage, held until the session
        ends (outside a transaction, :meth:`lock` is refused)."""
        if self._locks is None:
            raise RuntimeError("SqlSession.lock needs a transaction (storage.session(transaction=True))")
        lock = self._locks.get(key)
        if lock not in self.held:
            lock.acquire()
            self.held.append(lock)


class Locks:
    """A DuckDB storage's transaction locks, one thread lock per key."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[int, threading.Lock] = {}

    def get(self, key: int) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())


@contextmanager
def session(con: duckdb.DuckDBPyConnection, transaction: bool, locks: Locks) -> Iterator[SqlSession]:
    cur = con.cursor()
    s = DuckDBSession(cur, locks if transaction else None)
    try:
        if not transaction:
            yield s
            return
        cur.execute("BEGIN TRANSACTION")
        try:
            yield s
        except BaseException:
            try:
                cur.execute("ROLLBACK")
            except duckdb.Error as e:  # an aborted transaction may refuse it; the original error matters
                logger.debug("rollback after an error failed: %s", e)
            raise
        cur.execute("COMMIT")
    finally:
        for lock in reversed(s.held):
            lock.release()
        cur.close()
