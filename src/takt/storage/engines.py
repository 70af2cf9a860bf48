"""The one place that picks an engine: a database URL means PostgreSQL, else the workspace's DuckDB file."""

from __future__ import annotations

from pathlib import Path

from takt.storage.base import Storage


def single_owner(database_url: str | None) -> bool:
    """Whether one process owns the database while it is open (:attr:`Storage.single_owner`)."""
    if database_url:
        from takt.storage.postgres import PostgresStorage

        return PostgresStorage.single_owner
    from takt.storage.duckdb import DuckDBStorage

    return DuckDBStorage.single_owner


def open_engine(database_url: str | None, duckdb_path: Path, read_only: bool = False,
                memory_limit: str | None = None) -> Storage:
    """The storage of a PostgreSQL database (``database_url``) or of a DuckDB file."""
    if database_url:
        from takt.storage.postgres import PostgresStorage

        return PostgresStorage(database_url)
    from takt.storage.duckdb import DuckDBStorage

    return DuckDBStorage(duckdb_path, read_only=read_only, memory_limit=memory_limit)
