"""Where an analysis's sqlglot trees run: a workspace's own database (DuckDB or PostgreSQL, through
``storage.session()``) or Spark SQL over the Parquet export. An analysis asks only for ``dialect`` and ``rows``."""

from __future__ import annotations

from typing import Any, Protocol

from sqlglot import exp


class Engine(Protocol):
    dialect: str

    def rows(self, query: exp.Expression) -> list[tuple[Any, ...]]:
        """Run ``query`` (rendered in :attr:`dialect`); its rows."""
        ...


class SessionEngine:
    """The workspace's own database."""

    def __init__(self, storage: Any):
        self.storage = storage
        self.dialect: str = storage.dialect

    def rows(self, query: exp.Expression) -> list[tuple[Any, ...]]:
        with self.storage.session() as s:
            return [tuple(r) for r in s.query(query)]


class SparkEngine:
    """Spark SQL (:func:`takt.segments.spark.register_parquet` makes the tables visible)."""

    dialect = "spark"

    def __init__(self, session: Any):
        self.session = session

    def rows(self, query: exp.Expression) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.session.sql(query.sql(dialect="spark")).collect()]


class ConnectionEngine:
    """A DB-API connection of a known dialect (an in-memory DuckDB in tests and benchmarks)."""

    def __init__(self, con: Any, dialect: str = "duckdb"):
        self.con = con
        self.dialect = dialect

    def rows(self, query: exp.Expression) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.con.execute(query.sql(dialect=self.dialect)).fetchall()]
