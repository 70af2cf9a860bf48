"""The live evaluator and the compiled SQL (unoptimized and optimized) on DuckDB and PostgreSQL agree on the
members, for random trees over random small profiles and for the fixed examples.

To keep this fast, one DuckDB connection and one PostgreSQL database serve every example, and the compiled
SQL of a tree is cached (``now`` is fixed, so it does not depend on the data)."""

from __future__ import annotations

import functools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from takt.segments import ast as a
from takt.segments.compile import to_sql
from takt.segments.evaluate import members
from takt.segments.parser import parse
from takt.segments.printer import to_text
from takt.segments.view import ProfileView
from tests.segments.db import DuckDB, Postgres
from tests.segments.examples import EXAMPLES, SEGMENTS_TEXT
from tests.segments.strategies import NOW, data_tree, profiles

SEGMENTS = {name: parse(text) for name, text in SEGMENTS_TEXT.items()}
EXAMPLE_TREES = [parse(t) for t in EXAMPLES.values()]
SETTINGS = settings(max_examples=50, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@functools.lru_cache(maxsize=8192)
def sql_of(tree: a.Condition, dialect_name: str, optimize: bool) -> str:
    return to_sql(tree, now=NOW, dialect_name=dialect_name, segments=SEGMENTS, optimize=optimize, pretty=False)


def _agree(dbs: list[DuckDB | Postgres], trees: list[a.Condition], views: list[ProfileView]) -> None:
    expected = [members(tree, views, NOW, segments=SEGMENTS) for tree in trees]
    for db in dbs:
        db.load(views)
        for optimize in (False, True):
            for tree, want in zip(trees, expected, strict=True):
                got = db.members(sql_of(tree, db.kind, optimize))
                assert got == want, (
                    f"{db.kind} optimize={optimize} disagrees with the evaluator on {to_text(tree)}\n"
                    f"SQL: {sorted(got)}, evaluator: {sorted(want)}\n{views}")


@pytest.fixture(scope="session", params=["duckdb", "postgres"])
def dbs(request: pytest.FixtureRequest) -> list[DuckDB | Postgres]:
    """One engine per run of each test, so DuckDB is still checked where no PostgreSQL server is set."""
    return [request.getfixturevalue("duck" if request.param == "duckdb" else "pg")]


@SETTINGS
@given(trees=st.lists(data_tree, min_size=1, max_size=8), views=profiles())
def test_random_trees_agree(dbs: list[DuckDB | Postgres], trees: list[a.Condition], views: list[ProfileView]) -> None:
    _agree(dbs, trees, views)


@settings(SETTINGS, max_examples=15)
@given(views=profiles(n_max=6))
def test_examples_agree(dbs: list[DuckDB | Postgres], views: list[ProfileView]) -> None:
    _agree(dbs, EXAMPLE_TREES, views)


def test_a_known_disagreement_would_be_caught(dbs: list[DuckDB | Postgres]) -> None:
    """The harness itself can fail: a tree whose SQL members differ from what we claim must raise."""
    from takt.segments.view import EventRow

    views = [ProfileView("p0", events=(EventRow("track", NOW, event="Order Completed"),)), ProfileView("p1")]
    tree = parse('count(track "Order Completed" in last 1d) >= 1')
    for db in dbs:
        db.load(views)
        assert db.members(sql_of(tree, db.kind, True)) == {"p0"}
        assert db.members(sql_of(tree, db.kind, False)) == {"p0"}
