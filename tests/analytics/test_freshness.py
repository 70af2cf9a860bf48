"""Is the data fresh? Per source: time since its last event, ingestion lag, volume against the usual, and the
status against its SLA; the same on DuckDB and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from takt.analytics.freshness import freshness
from tests.analytics.support import END, duckdb_engine, postgres_engine, random_people, same

NOW = END + timedelta(hours=1)


def _expected(people: list, source: str) -> tuple[float, int, float]:  # type: ignore[type-arg]
    received = [t.at + timedelta(seconds=3) for p in people for t in p.touches if t.touchpoint == source]
    recent = sum(1 for r in received if r >= NOW - timedelta(hours=24))
    base = sum(1 for r in received if NOW - timedelta(days=29) <= r < NOW - timedelta(hours=24))
    return (NOW - max(received)).total_seconds(), recent, base / 28


def test_sources_against_their_slas() -> None:
    people = random_people(31, 200)
    since_web = _expected(people, "web")[0] / 60
    slas = {"web": since_web + 10, "app": 1.0, "default": 10_000_000}
    with duckdb_engine(people) as engine:
        report = freshness(engine, NOW, slas)
    by = {r["source"]: r for r in report["sources"]}
    assert set(by) == {"web", "app", "email", "store"}
    for source, row in by.items():
        since, recent, usual = _expected(people, source)
        assert row["since_last_seconds"] == pytest.approx(since)
        assert row["recent"] == recent and row["usual"] == pytest.approx(usual)
        assert row["lag_p50_seconds"] == pytest.approx(3) and row["lag_p99_seconds"] == pytest.approx(3)
    assert by["app"]["status"] == "breach" and report["status"] == "breach"
    assert by["web"]["status"] in ("ok", "warning")
    assert freshness_without_sla(people)["status"] == "no SLA"


def freshness_without_sla(people: list) -> dict:  # type: ignore[type-arg]
    with duckdb_engine(people) as engine:
        return freshness(engine, NOW, {})


def test_a_source_that_stopped_is_a_breach_once_its_sla_has_passed() -> None:
    people = random_people(32, 100)
    since = _expected(people, "web")[0] / 60
    slas = {"web": since + 1, "default": 10_000_000}
    with duckdb_engine(people) as engine:
        before = {r["source"]: r["status"] for r in freshness(engine, NOW, slas)["sources"]}
        after = {r["source"]: r["status"] for r in freshness(engine, NOW + timedelta(minutes=2), slas)["sources"]}
    assert before["web"] != "breach" and after["web"] == "breach"


def test_the_same_on_postgres(pg_url: str) -> None:
    people = random_people(33, 120)
    with duckdb_engine(people) as duck:
        expected = freshness(duck, NOW, {"web": 60})
    with postgres_engine(pg_url, people) as pg:
        same(expected, freshness(pg, NOW, {"web": 60}))
