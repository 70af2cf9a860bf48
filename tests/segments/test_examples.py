"""The fixed examples on a hand-made dataset: members worked out by hand, checked on the evaluator, DuckDB and
PostgreSQL (optimized and not)."""

from __future__ import annotations

import pytest

from takt.segments.compile import to_sql
from takt.segments.evaluate import members
from takt.segments.parser import parse
from tests.segments.db import DuckDB, Postgres
from tests.segments.examples import EXAMPLES, EXPECTED, FIXTURE_VIEWS, SEGMENTS_TEXT
from tests.segments.strategies import NOW

SEGMENTS = {name: parse(text) for name, text in SEGMENTS_TEXT.items()}


def test_every_example_has_expected_members() -> None:
    assert set(EXPECTED) == set(EXAMPLES)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_evaluator_members(name: str) -> None:
    assert members(parse(EXAMPLES[name]), FIXTURE_VIEWS, NOW, segments=SEGMENTS) == EXPECTED[name]


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_sql_members(engine: str, request: pytest.FixtureRequest) -> None:
    db: DuckDB | Postgres = request.getfixturevalue("duck" if engine == "duckdb" else "pg")
    db.load(FIXTURE_VIEWS)
    for name, text in sorted(EXAMPLES.items()):
        for optimize in (False, True):
            sql = to_sql(parse(text), now=NOW, dialect_name=engine, segments=SEGMENTS, optimize=optimize)
            assert db.members(sql) == EXPECTED[name], f"{name} optimize={optimize}\n{sql}"
