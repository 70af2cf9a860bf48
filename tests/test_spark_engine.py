"""A workspace's segments on Spark: `takt export parquet` feeds Spark SQL, which returns the same members as DuckDB.

Runs when ``TAKT_TEST_SPARK=1`` (``scripts/test``, and so CI, sets it); then a missing extra or Java fails."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from takt.cli.main import main
from takt.clock import FixedClock
from takt.profiles.config import ProfileConfig
from takt.projections.export import export_parquet
from takt.projections.runner import ProfileRunner
from takt.segments import parse, to_sql
from takt.storage.duckdb import DuckDBStorage
from tests.test_segment_workspace import DEFINITIONS, NOW, people

if os.environ.get("TAKT_TEST_SPARK", "") != "1":
    pytest.skip("Spark execution is opt-in: set TAKT_TEST_SPARK=1", allow_module_level=True)


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from takt.segments.spark import spark_session

    session = spark_session("local[1]")
    try:
        yield session
    finally:
        session.stop()


def test_spark_and_duckdb_agree_on_every_definition(tmp_path: Path, spark: Any) -> None:
    from takt.segments.spark import register_parquet, spark_members

    storage = DuckDBStorage(tmp_path / "t.duckdb")
    try:
        storage.log.append(people())
        config = ProfileConfig()
        counts = export_parquet(storage, ProfileRunner(storage, config, FixedClock(NOW)), config, tmp_path / "pq")
        assert counts["profiles"] == 12 and counts["events"] == storage.log.count()
        register_parquet(spark, tmp_path / "pq")
        distinct = set()
        for definition in DEFINITIONS:
            node = parse(definition)
            duck = {r[0] for r in storage.con.execute(to_sql(node, now=NOW, pretty=False)).fetchall()}
            on_spark = spark_members(spark, to_sql(node, now=NOW, dialect_name="spark", pretty=False))
            assert on_spark == duck, definition
            distinct.add(frozenset(duck))
        assert len(distinct) >= 5, "the definitions must select different groups"
    finally:
        storage.close()


def test_segment_count_with_the_spark_engine(tmp_path: Path, spark: Any) -> None:
    ws = tmp_path / "ws"
    assert CliRunner().invoke(main, ["init", str(ws)]).exit_code == 0
    s = DuckDBStorage(ws / "takt.duckdb")
    s.log.append(people())
    s.close()
    r = CliRunner().invoke(main, ["segment", "count", "-w", str(ws), 'trait.country = "DE"', "--at",
                                  NOW.isoformat(), "--engine", "spark", "--spark-master", "local[1]"])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("4 profiles match (spark")
    r = CliRunner().invoke(main, ["export", "parquet", "-w", str(ws), str(tmp_path / "out")])
    assert r.exit_code == 0 and (tmp_path / "out" / "profile_events.parquet").exists()
