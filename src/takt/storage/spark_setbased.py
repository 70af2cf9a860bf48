"""Runs the set-based rebuild's aggregates (:mod:`takt.profiles.setbased`) on Apache Spark (the ``spark``
extra): the same sqlglot trees as DuckDB, in Spark's dialect, over the ``ev`` rows written as Parquet to a
directory every executor can read (local mode: a temporary directory)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlglot import exp

from takt.profiles.setbased import EV_SCHEMA


def run_columns(session: Any, ev: dict[str, list[Any]], queries: dict[str, exp.Select],
                directory: Path | None = None) -> dict[str, list[tuple[Any, ...]]]:
    """The aggregates over ``ev`` given as columns (:data:`~takt.profiles.setbased.EV_SCHEMA`), by name.
    ``directory``: where the rows go for the executors (default: a temporary directory, for local mode)."""
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        path = Path(tmp) / "ev.parquet"
        pq.write_table(pa.Table.from_pydict(ev, schema=EV_SCHEMA), path)
        session.read.parquet(str(path)).createOrReplaceTempView("ev")
        try:
            return {name: [tuple(row) for row in session.sql(q.sql(dialect="spark")).collect()]
                    for name, q in queries.items()}
        finally:
            session.catalog.dropTempView("ev")
