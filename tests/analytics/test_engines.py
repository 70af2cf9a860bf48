"""One implementation, every engine: touchpoints, paths, attribution and freshness give the same numbers on DuckDB,
PostgreSQL and Spark, on random data and on a small demo (Spark when ``TAKT_TEST_SPARK=1``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from takt.analytics.attribution import attribution
from takt.analytics.config import AnalyticsConfig
from takt.analytics.engine import ConnectionEngine, Engine, SessionEngine
from takt.analytics.freshness import freshness
from takt.analytics.paths import paths
from takt.analytics.scope import Scope
from takt.analytics.touchpoints import touchpoints
from takt.projections.facts import EVENTS_SCHEMA, PROFILE_SCHEMAS, TablesWrite
from takt.segments import parse
from tests.analytics.support import END, T0, duckdb_engine, postgres_engine, random_people, same, spark_engine

SPARK = os.environ.get("TAKT_TEST_SPARK", "") == "1"
CONFIG = AnalyticsConfig(min_group_size=3)


def reports(engine: Engine, scope: Scope) -> dict[str, Any]:
    return {"touchpoints": touchpoints(engine, scope, CONFIG, trend="week"),
            "paths": paths(engine, scope, CONFIG, length=4, top=50),
            "attribution": attribution(engine, scope, CONFIG, half_lives=(2, 10)),
            "fresh": freshness(engine, scope.end + timedelta(hours=1), {"web": 60, "default": 600})}


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    if not SPARK:
        yield None
        return
    from takt.segments.spark import spark_session

    session = spark_session("local[1]")
    try:
        yield session
    finally:
        session.stop()


SCOPES = [Scope(T0, END), Scope(T0 + timedelta(days=20), END, segment=parse('trait.country in ["DE", "FR"]'))]


SPARK_SEED = 21


@pytest.mark.parametrize("seed", [21, 22])
def test_random_data_gives_the_same_numbers_on_every_engine(seed: int, pg_url: str, spark: Any,
                                                            tmp_path: Path) -> None:
    people = random_people(seed, 120)
    for scope in SCOPES:
        with duckdb_engine(people) as duck:
            expected = reports(duck, scope)
        assert expected["attribution"]["touchpoints"] and expected["paths"]["paths"]
        with postgres_engine(pg_url, people) as pg:
            same(expected, reports(pg, scope), "postgres")
        if spark is not None and seed == SPARK_SEED:  # Spark's start-up per query dominates: one random world
            # (both scopes) and the demo run on it; the other world on DuckDB and PostgreSQL
            same(expected, reports(spark_engine(spark, people, tmp_path / f"pq{seed}"), scope), "spark")


DEMO_END = datetime(2026, 11, 24, 12, tzinfo=UTC)


def _copy_to_postgres(storage: Any, url: str) -> None:
    import psycopg

    from takt.storage import pg_segment_tables

    def read(name: str, schema: pa.Schema) -> pa.Table:
        cols = ", ".join(schema.names)
        return storage.con.cursor().sql(f"SELECT {cols} FROM {name}").to_arrow_table().cast(schema)

    rows = {name: read(name, schema) for name, schema in PROFILE_SCHEMAS.items()}
    events = read("profile_events", EVENTS_SCHEMA)
    with psycopg.connect(url, autocommit=True) as con:
        pg_segment_tables.ensure(con)
        with con.transaction():
            pg_segment_tables.write(con, TablesWrite(position=0, rows=rows, events=events, replace=True))


def test_a_demo_gives_the_same_numbers_on_every_engine(tmp_path: Path, pg_url: str, spark: Any) -> None:
    import psycopg

    from takt.clock import FixedClock
    from takt.demo.feed import build_demo
    from takt.demo.generator import DemoConfig
    from takt.profiles.config import ProfileConfig
    from takt.projections.export import export_parquet
    from takt.projections.runner import ProfileRunner
    from takt.projections.tables import WorkspaceTables
    from takt.workspace import open_workspace

    build_demo(tmp_path / "d", DemoConfig(end=DEMO_END, customers=60, days=120, seed=5), clock=FixedClock(DEMO_END),
               transport="testclient")
    ws = open_workspace(tmp_path / "d")
    scopes = [Scope(DEMO_END - timedelta(days=90), DEMO_END),
              Scope(DEMO_END - timedelta(days=90), DEMO_END, segment=parse('touchpoint("web").count >= 1'))]
    with ws.open_storage() as storage:
        config = ProfileConfig.from_settings(ws.settings)
        runner = ProfileRunner(storage, config, FixedClock(DEMO_END))
        runner.load()
        runner.catch_up()
        WorkspaceTables(storage, runner, computed=[]).refresh()
        expected = [reports(SessionEngine(storage), s) for s in scopes]
        assert expected[0]["attribution"]["attributed"] > 0 and expected[0]["touchpoints"]["by_purpose"]
        _copy_to_postgres(storage, pg_url)
        if spark is not None:
            from takt.segments.spark import register_parquet

            export_parquet(storage, runner, config, tmp_path / "pq")
            register_parquet(spark, tmp_path / "pq")
    with psycopg.connect(pg_url, autocommit=True) as con:
        for scope, want in zip(scopes, expected, strict=True):
            same(want, reports(ConnectionEngine(con, "postgres"), scope), "postgres")
    if spark is not None:
        from takt.analytics.engine import SparkEngine

        for scope, want in zip(scopes, expected, strict=True):
            same(want, reports(SparkEngine(spark), scope), "spark")
