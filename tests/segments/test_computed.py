"""Computed traits: the live value (:func:`compute`) equals the SQL rows (:func:`materialize_computed`) on DuckDB
and PostgreSQL for random profiles; segments over computed traits select the same members both ways; Spark runs
the same SQL when ``TAKT_TEST_SPARK=1`` (``test_computed_spark.py``)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from takt.segments.compile import to_sql
from takt.segments.computed import (
    COMPUTED_PROVENANCE,
    ComputedTrait,
    compute,
    computed_sql,
    from_settings,
    materialize_computed,
    parse_computed,
    with_computed,
)
from takt.segments.errors import SegmentError
from takt.segments.evaluate import members
from takt.segments.parser import parse
from takt.segments.view import EventRow, ProfileView
from tests.segments.db import DuckDB, Postgres
from tests.segments.strategies import NOW, profiles

TRAITS = [parse_computed(t) for t in (
    'lifetime_value = sum(track "Order Completed".revenue)',
    'orders_90d = count(track "Order Completed" in last 90d)',
    'avg_order = avg(track "Order Completed".revenue where properties.revenue > 0)',
    'smallest = min(track.revenue between 2026-01-01 and 2026-11-30)',
    'biggest = max(track "Order Completed".n in last 30d)',
    'favourite_path = mode(page.path in last 365d)',
    'last_path = last(page "Krabi".path)',
    'usual_revenue = mode(track.revenue)',
    'with_revenue = count(track.revenue)',
)]
SEGMENTS = ["trait.lifetime_value > 100", 'trait.favourite_path = "/home"', "trait.orders_90d >= 2",
            'trait.last_path contains "krabi"', "trait.avg_order exists", "trait.usual_revenue = 20"]
SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="session", params=["duckdb", "postgres"])
def db(request: pytest.FixtureRequest) -> DuckDB | Postgres:
    return request.getfixturevalue("duck" if request.param == "duckdb" else "pg")  # type: ignore[no-any-return]


def sql_values(db: DuckDB | Postgres, views: list[ProfileView]) -> dict[tuple[str, str], Any]:
    db.load(views)
    materialize_computed(db.con, TRAITS, now=NOW, dialect_name=db.kind)
    names = {t.name for t in TRAITS}
    return {(pid, name): json.loads(value) for pid, name, value, prov in db.rows(
        "SELECT profile_id, name, value, provenance FROM profile_traits") if name in names
        and prov == COMPUTED_PROVENANCE}


def same(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


@SETTINGS
@given(views=profiles(n_max=5))
def test_live_values_equal_sql_rows(db: DuckDB | Postgres, views: list[ProfileView]) -> None:
    got = sql_values(db, views)
    want = {(v.profile_id, t.name): compute(t, v, NOW) for v in views for t in TRAITS}
    want = {k: v for k, v in want.items() if v is not None}
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert same(got[key], value), (db.kind, key, got[key], value)
    # segments over computed traits: the same members live and in SQL
    live_views = [with_computed(TRAITS, v, NOW) for v in views]
    for text in SEGMENTS:
        tree = parse(text)
        sql = {pid for (pid,) in db.rows(to_sql(tree, now=NOW, dialect_name=db.kind, pretty=False))}
        assert sql == members(tree, live_views, NOW), (db.kind, text)


def test_values_by_hand() -> None:
    from datetime import timedelta

    evs = tuple(EventRow("page", NOW - timedelta(days=d), name="Krabi", properties={"path": p})
                for d, p in ((1, "/b"), (2, "/a"), (3, "/a"), (4, "/b"), (400, "/a"), (400, "/a")))
    v = ProfileView("p1", events=evs, traits={"favourite_path": ("stored", "crm_import")})
    fav = parse_computed("favourite_path = mode(page.path in last 365d)")
    assert compute(fav, v, NOW) == "/a"  # 2 against 2 in the window: the smaller text
    assert compute(parse_computed("x = last(page.path)"), v, NOW) == "/b"
    assert compute(parse_computed("x = count(page.path in last 3d)"), v, NOW) == 2  # 1 and 2 days ago
    assert compute(parse_computed("x = avg(page.path)"), v, NOW) is None
    assert compute(parse_computed("x = sum(page.n)"), v, NOW) == 0.0
    # the computed value replaces a stored trait of the same name
    assert with_computed([fav], v, NOW).traits["favourite_path"] == ("/a", COMPUTED_PROVENANCE)
    assert "favourite_path" not in with_computed([fav], ProfileView("p2", traits=v.traits), NOW).traits


def test_definitions_from_settings_and_errors() -> None:
    traits = from_settings({"ltv": 'sum(track "Order Completed".revenue)'})
    assert traits == [ComputedTrait("ltv", "sum", parse_computed("x = sum(track \"Order Completed\".revenue)").source,
                                    ("revenue",))]
    with pytest.raises(SegmentError, match="stored as 'ltv'"):
        from_settings({"ltv": 'other = sum(track "Order Completed".revenue)'})
    with pytest.raises(SegmentError, match="must be a string"):
        from_settings({"ltv": 3})
    with pytest.raises(SegmentError, match="needs a property"):
        parse_computed("x = last(track)")
    with pytest.raises(SegmentError, match="unexpected"):
        parse_computed("x = sum(track.a) > 3")
    with pytest.raises(ValueError, match="no computed traits"):
        computed_sql([], now=NOW)
