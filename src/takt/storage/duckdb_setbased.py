"""Runs the set-based profile aggregates (:mod:`takt.profiles.setbased`) in an in-memory DuckDB over the Arrow
tables :func:`~takt.profiles.setbased.extract` builds (zero-copy: DuckDB scans the Arrow buffers)."""

from __future__ import annotations

from typing import Any

import duckdb
from sqlglot import exp

from takt.profiles.setbased import Tables


def run(tables: Tables, queries: dict[str, exp.Select], threads: int | None = None) -> dict[str, list[tuple[Any, ...]]]:
    """Every query's rows, by name."""
    con = duckdb.connect(":memory:", config={"threads": threads} if threads is not None else {})
    try:
        con.register("ev", tables.ev)
        con.register("ik", tables.ik)
        return {name: con.execute(q.sql(dialect="duckdb")).fetchall() for name, q in queries.items()}
    finally:
        con.close()
