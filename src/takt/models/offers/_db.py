"""The model layer's own small tables (offers, CLV scores) on the workspace's storage, through its SQL session
(:mod:`takt.storage.session`): statements written once, in DuckDB's dialect with ``?`` parameters."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pyarrow as pa

from takt.storage.base import Storage
from takt.storage.session import SqlSession


def table_lock_key(name: str) -> int:
    """A stable lock key for the writers of one table (the same in every process)."""
    return int.from_bytes(hashlib.blake2b(f"takt.table.{name}".encode(), digest_size=8).digest(), "big",
                          signed=True)


class Tx:
    """Statements inside one transaction."""

    def __init__(self, session: SqlSession):
        self.session = session

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.session.execute(sql, params)

    def insert_rows(self, table: str, data: pa.Table) -> None:
        """Append an Arrow table's rows to ``table`` (same column names)."""
        self.session.insert(table, data)


class Sql:
    def __init__(self, storage: Storage):
        self.storage = storage

    @contextmanager
    def transaction(self, lock_table: str | None = None) -> Iterator[Tx]:
        """One transaction; ``lock_table`` serializes writers of that table (across processes on PostgreSQL)."""
        with self.storage.session(transaction=True) as s:
            if lock_table:
                s.lock(table_lock_key(lock_table))
            yield Tx(s)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.storage.session() as s:
            return s.execute(sql, params)

    def has_table(self, name: str) -> bool:
        rows = self.query("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name])
        return bool(rows and rows[0][0])

    def ensure(self, name: str, ddl: str) -> None:
        """Create a table if it is missing (concurrent creators are serialized)."""
        if self.has_table(name):
            return
        with self.storage.session(transaction=True) as s:
            s.lock(table_lock_key(name))
            s.script(ddl)
