"""Shared databases for the segment tests: one DuckDB connection and one PostgreSQL database per session,
tables cleared and refilled per example."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import _require_pg
from tests.segments.db import DuckDB, Postgres


@pytest.fixture(scope="session")
def duck() -> Iterator[DuckDB]:
    db = DuckDB()
    try:
        yield db
    finally:
        db.close()


@pytest.fixture(scope="session")
def pg() -> Iterator[Postgres]:
    base = _require_pg()
    import psycopg

    name = "takt_seg_" + uuid.uuid4().hex[:12]
    with psycopg.connect(base, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    db = Postgres(base.rsplit("/", 1)[0] + "/" + name)
    try:
        yield db
    finally:
        db.close()
        with psycopg.connect(base, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
