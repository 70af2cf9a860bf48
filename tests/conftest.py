"""Shared fixtures. Storage backends: DuckDB always; PostgreSQL when TAKT_TEST_POSTGRES_URL names a server
(scripts/test starts one). Under CI the PostgreSQL URL is required: a missing server fails, never skips."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from takt.clock import FixedClock
from takt.storage.base import Storage

PG_URL = os.environ.get("TAKT_TEST_POSTGRES_URL", "")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

BACKENDS = ["duckdb", "postgres"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if IN_CI and not PG_URL:
        raise pytest.UsageError("CI needs TAKT_TEST_POSTGRES_URL: run the suite through scripts/test")


def _require_pg() -> str:
    if not PG_URL:
        pytest.skip("no PostgreSQL server (set TAKT_TEST_POSTGRES_URL, or run scripts/test which starts one)")
    return PG_URL


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    base = _require_pg()
    import psycopg

    name = "takt_test_" + uuid.uuid4().hex[:12]
    with psycopg.connect(base, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    url = base.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        with psycopg.connect(base, autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def open_backend(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Storage:
    if kind == "duckdb":
        from takt.storage.duckdb import DuckDBStorage

        return DuckDBStorage(tmp_path / "takt.duckdb")
    url = request.getfixturevalue("pg_url")
    from takt.storage.postgres import PostgresStorage

    return PostgresStorage(url)


@pytest.fixture(params=BACKENDS)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    s = open_backend(request.param, tmp_path, request)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 11, 24, 12, 0, tzinfo=UTC))
