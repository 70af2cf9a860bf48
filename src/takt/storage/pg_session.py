""":class:`~takt.storage.session.SqlSession` on a pooled PostgreSQL connection: statements written in DuckDB's
dialect are transpiled once (sqlglot, cached), bulk inserts go in with ``COPY``."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
import pyarrow as pa
import sqlglot

from takt.storage.session import SqlSession, UniqueViolation


@functools.lru_cache(maxsize=1024)
def to_postgres(sql: str) -> tuple[str, ...]:
    """``sql`` (DuckDB dialect, ``?`` parameters) as PostgreSQL statements (``%s`` parameters)."""
    return tuple(s for s in sqlglot.transpile(sql, read="duckdb", write="postgres") if s.strip())


class PostgresSession(SqlSession):
    dialect = "postgres"

    def __init__(self, con: psycopg.Connection[Any], transaction: bool = False):
        self._con = con
        self._transaction = transaction

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        (statement,) = to_postgres(sql)
        try:
            cur = self._con.execute(statement, list(params))  # type: ignore[arg-type]  # transpiled, not user text
        except psycopg.errors.UniqueViolation as e:
            raise UniqueViolation(str(e)) from e
        return [tuple(r) for r in cur.fetchall()] if cur.description is not None else []

    def native(self, sql: str) -> list[tuple[Any, ...]]:
        cur = self._con.execute(sql)  # type: ignore[arg-type]  # rendered by sqlglot, not user text
        return [tuple(r) for r in cur.fetchall()] if cur.description is not None else []

    def script(self, sql: str) -> None:
        for statement in to_postgres(sql):
            self._con.execute(statement)  # type: ignore[arg-type]  # transpiled, not user text

    def insert(self, table: str, rows: pa.Table) -> None:
        cols = ", ".join(f'"{c}"' for c in rows.column_names)
        with self._con.cursor() as cur, cur.copy(f'COPY "{table}" ({cols}) FROM STDIN') as copy:  # type: ignore[arg-type]
            for row in zip(*(c.to_pylist() for c in rows.columns), strict=True):
                copy.write_row(row)

    def index(self, table: str, columns: Sequence[str]) -> None:
        name = "_".join((table, *columns))
        cols = ", ".join(f'"{c}"' for c in columns)
        self._con.execute(f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" ({cols})')  # type: ignore[arg-type]

    def lock(self, key: int) -> None:
        if not self._transaction:
            raise RuntimeError("SqlSession.lock needs a transaction (storage.session(transaction=True))")
        self._con.execute("SELECT pg_advisory_xact_lock(%s)", [key])


@contextmanager
def session(pool: Any, transaction: bool) -> Iterator[SqlSession]:
    with pool.connection() as con:
        if not transaction:
            yield PostgresSession(con)
            return
        with con.transaction():
            yield PostgresSession(con, transaction=True)
