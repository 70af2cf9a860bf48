"""Runs the set-based profile aggregates (:mod:`takt.profiles.setbased`) in an in-memory DuckDB over the Arrow
tables :func:`~takt.profiles.setbased.extract` builds (zero-copy: DuckDB scans the Arrow buffers)."""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa
from sqlglot import exp

from takt.profiles.setbased import EV_SCHEMA, Tables


def run(tables: Tables, queries: dict[str, exp.Select], threads: int | None = None) -> dict[str, list[tuple[Any, ...]]]:
    """Every query's rows, by name."""
    con = duckdb.connect(":memory:", config={"threads": threads} if threads is not None else {})
    try:
        con.register("ev", tables.ev)
        con.register("ik", tables.ik)
        return {name: con.execute(q.sql(dialect="duckdb")).fetchall() for name, q in queries.items()}
    finally:
        con.close()


def run_columns(ev: dict[str, list[Any]], queries: dict[str, exp.Select],
                threads: int | None = None) -> dict[str, list[tuple[Any, ...]]]:
    """The aggregates over ``ev`` given as columns (:data:`~takt.profiles.setbased.EV_SCHEMA`)."""
    table = pa.Table.from_pydict(ev, schema=EV_SCHEMA)
    con = duckdb.connect(":memory:", config={"threads": threads} if threads is not None else {})
    try:
        con.register("ev", table)
        return {name: con.execute(q.sql(dialect="duckdb")).fetchall() for name, q in queries.items()}
    finally:
        con.close()
