"""The one place that picks an engine: a database URL means PostgreSQL, else the workspace's DuckDB file."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


@contextmanager
def scratch() -> Iterator[Any]:
    """An in-memory DuckDB connection (time zone UTC) with the segment contract's tables created: where a
    PostgreSQL workspace's profiles are counted on DuckDB, or written as Parquet for Spark."""
    import duckdb

    from takt.storage import duckdb_segment_tables

    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")
        duckdb_segment_tables.ensure(con)
        yield con
    finally:
        con.close()


def scratch_writer(con: Any) -> Callable[[Any], None]:
    """Writes a :class:`takt.projections.facts.TablesWrite` whole into a :func:`scratch` connection."""
    from takt.storage import duckdb_segment_tables

    return lambda w: duckdb_segment_tables.write_alone(con, w)


def compact_file(path: Path) -> None:
    """Rewrite a DuckDB file so that nothing deleted lingers in its free blocks or WAL: the database is copied
    table by table into a fresh file, which then replaces the old one. The file must not be open elsewhere.
    (What the filesystem does with the old file's blocks is outside takt's reach; see docs/privacy.md.)"""
    path = Path(path)
    fresh = path.with_name(path.name + ".compact")
    for leftover in (fresh, Path(str(fresh) + ".wal")):
        leftover.unlink(missing_ok=True)
    import duckdb

    con = duckdb.connect(str(path))
    try:
        con.execute("CHECKPOINT")
        name = con.execute("SELECT current_database()").fetchall()[0][0]
        con.execute(f"ATTACH '{_quote(str(fresh))}' AS takt_fresh")
        con.execute(f'COPY FROM DATABASE "{name}" TO takt_fresh')
        con.execute("DETACH takt_fresh")
    except BaseException:
        fresh.unlink(missing_ok=True)
        raise
    finally:
        con.close()
    os.replace(fresh, path)
    Path(str(path) + ".wal").unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _quote(s: str) -> str:
    return s.replace("'", "''")


def setbased_runner(engine: str, threads: int | None = None, master: str = "local[2]"
                    ) -> Callable[[Any, Any], Any]:
    """What runs the set-based rebuild's aggregates (:mod:`takt.profiles.setbased`): DuckDB in memory (``threads``
    its own when ``None``), or Spark (``engine == "spark"``: local mode, or the cluster ``master`` names)."""
    if engine == "spark":
        from takt.segments.spark import spark_session
        from takt.storage import spark_setbased

        session = spark_session(master)
        return lambda cols, qs: spark_setbased.run_columns(session, cols, qs)
    from takt.storage.duckdb_setbased import run_columns

    return lambda cols, qs: run_columns(cols, qs, threads)
