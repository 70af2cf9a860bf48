"""A narrow SQL interface for the small stores of the domain packages (model registry, offers, segment
definitions): one connection's worth of statements, written once, run on whichever engine holds the workspace.

Statements are written in DuckDB's dialect with ``?`` parameters; a PostgreSQL session transpiles each one
with sqlglot (cached), so ``VARCHAR``/``BLOB``/``DOUBLE`` and ``?`` become ``TEXT``/``BYTEA``/``DOUBLE
PRECISION`` and ``%s``. What differs by engine beyond the dialect — bulk inserts, transaction-scoped locks —
is a method here, implemented under ``storage/`` (:mod:`takt.storage.duckdb_session`,
:mod:`takt.storage.pg_session`). Domain code never asks which engine it runs on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
from sqlglot import exp


class UniqueViolation(Exception):
    """A statement would have stored a second row with the same key (on any engine)."""


class SqlSession(ABC):
    """Statements on one connection; inside ``storage.session(transaction=True)`` they commit together or not
    at all (an exception rolls back)."""

    dialect: str
    """The engine's sqlglot dialect name (``duckdb``, ``postgres``): for queries built as sqlglot trees."""

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement (DuckDB dialect, ``?`` parameters); the rows it returns (``[]`` for none).
        A duplicate key raises :class:`UniqueViolation`."""

    @abstractmethod
    def native(self, sql: str) -> list[tuple[Any, ...]]:
        """Run one statement already in this engine's dialect, as is (SQL a sqlglot tree was rendered to with
        :attr:`dialect`: the segment compiler's queries); its rows (``[]`` for none)."""

    def query(self, tree: exp.Expression) -> list[tuple[Any, ...]]:
        """Render a sqlglot tree in this engine's dialect and run it."""
        return self.native(tree.sql(dialect=self.dialect))

    @abstractmethod
    def script(self, sql: str) -> None:
        """Run several ``;``-separated statements without parameters (schema creation)."""

    @abstractmethod
    def insert(self, table: str, rows: pa.Table) -> None:
        """Append ``rows`` (columns named as the table's) in bulk."""

    @abstractmethod
    def index(self, table: str, columns: Sequence[str]) -> None:
        """A secondary index for look-ups by ``columns``, where the engine benefits from one (a row store);
        a no-op on a column store, whose zone maps serve such look-ups and where an index costs every insert."""

    @abstractmethod
    def lock(self, key: int) -> None:
        """An exclusive lock on ``key`` until the transaction ends, against other processes of the workspace
        (a no-op where one process owns the database)."""
