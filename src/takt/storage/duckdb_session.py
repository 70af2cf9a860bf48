""":class:`~takt.storage.session.SqlSession` on a DuckDB connection (a cursor of the storage's connection, so
each thread has its own)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import duckdb
import pyarrow as pa
import sqlglot

from takt.storage.session import SqlSession

_QUERY = re.compile(r"\s*\(?\s*(SELECT|WITH|VALUES|FROM|TABLE|SHOW|DESCRIBE|PRAGMA|EXPLAIN)\b", re.IGNORECASE)
_RETURNING = re.compile(r"\bRETURNING\b", re.IGNORECASE)


class DuckDBSession(SqlSession):
    dialect = "duckdb"

    def __init__(self, cur: duckdb.DuckDBPyConnection):
        self._cur = cur

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self._cur.execute(sql, list(params))
        if not _QUERY.match(sql) and not _RETURNING.search(sql):
            return []  # DuckDB answers INSERT/UPDATE/DELETE with a row count; PostgreSQL with no rows
        return [tuple(r) for r in self._cur.fetchall()]

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
        """One process owns a DuckDB file, and DuckDB's own transactions serialize its writers."""


@contextmanager
def session(con: duckdb.DuckDBPyConnection, transaction: bool) -> Iterator[SqlSession]:
    cur = con.cursor()
    try:
        if not transaction:
            yield DuckDBSession(cur)
            return
        cur.execute("BEGIN TRANSACTION")
        try:
            yield DuckDBSession(cur)
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")
    finally:
        cur.close()
