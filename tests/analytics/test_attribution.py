"""Attribution: each model's credits against a plain Python reading of the same journeys, the credits sum to the
conversions attributed (property), and the Markov removal effect is the exact absorption probability."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from takt.analytics import markov
from takt.analytics.attribution import attribution, full_credits, time_decay_name
from takt.analytics.config import AnalyticsConfig
from takt.analytics.engine import ConnectionEngine
from takt.analytics.scope import Scope
from takt.storage import duckdb_segment_tables
from tests.analytics.support import (
    END,
    GOAL,
    T0,
    duckdb_engine,
    journeys,
    oracle_credits,
    people_from,
    random_people,
    tables_write,
)

EVERY = AnalyticsConfig(min_group_size=1)
SCOPE = Scope(T0, END)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_model_matches_an_independent_reading(seed: int) -> None:
    people = random_people(seed, 80)
    expected = oracle_credits(people, T0, END, 30, 7)
    assert expected, "the data must hold attributed conversions"
    with duckdb_engine(people) as engine:
        report = attribution(engine, SCOPE, EVERY, days=30, half_lives=(7,))
    got = {r["touchpoint"]: r for r in report["touchpoints"]}
    assert set(got) == set(expected)
    for tp, want in expected.items():
        assert got[tp]["first_touch"] == want["first_touch"]
        assert got[tp]["last_touch"] == want["last_touch"]
        assert got[tp]["linear"] == pytest.approx(want["linear"], abs=1e-9)
        assert got[tp]["time_decay_7d"] == pytest.approx(want["decay"], abs=1e-9)
    assert report["conversions"] == len(journeys(people, T0, END, 30))
    assert report["attributed"] == sum(1 for _, steps, _ in journeys(people, T0, END, 30) if steps)


def test_a_shorter_window_and_half_lives_change_the_credits() -> None:
    people = random_people(4, 80)
    with duckdb_engine(people) as engine:
        wide = attribution(engine, SCOPE, EVERY, days=30, half_lives=(1, 14))
        narrow = attribution(engine, SCOPE, EVERY, days=2, half_lives=(1, 14))
    assert wide["models"] == ["first_touch", "last_touch", "linear", "time_decay_1d", "time_decay_14d", "markov"]
    assert narrow["attributed"] < wide["attributed"]
    row = wide["touchpoints"][0]
    assert row["time_decay_1d"] != pytest.approx(row["time_decay_14d"], abs=1e-6)


_ENGINE: list[ConnectionEngine] = []


def _shared() -> ConnectionEngine:
    """One in-memory database for every example (each replaces the tables' rows)."""
    if not _ENGINE:
        import duckdb

        con = duckdb.connect(":memory:")
        duckdb_segment_tables.ensure(con)
        _ENGINE.append(ConnectionEngine(con))
    return _ENGINE[0]


journey = st.lists(st.tuples(st.integers(0, 60 * 24 * 60 - 1), st.integers(0, 3), st.integers(0, 6)),
                   max_size=8)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["DE", "FR"]), journey), max_size=12), st.integers(1, 40),
       st.floats(0.1, 30))
def test_every_models_credits_sum_to_the_conversions_it_attributes(spec: list, days: int, half_life: float
                                                                      ) -> None:
    people = people_from(spec)
    engine = _shared()
    duckdb_segment_tables.write_alone(engine.con, tables_write(people))
    rows = full_credits(engine, SCOPE, EVERY, GOAL, days, (half_life,))
    attributed = sum(1 for _, steps, _ in journeys(people, T0, END, days) if steps)
    for model in ("first_touch", "last_touch", "linear", time_decay_name(half_life), "markov"):
        total = sum(r[model] for r in rows)
        if model in ("first_touch", "last_touch"):
            assert total == attributed, model
        else:
            assert math.isclose(total, attributed, rel_tol=0, abs_tol=1e-9), (model, total, attributed)


def test_markov_removal_effect_is_solved_exactly() -> None:
    # journeys: (start) → A → B → A → (conversion), and (start) → B → (null). From A: B or convert, 1/2 each;
    # from B: A or drop out. P = 1/2·2/3 + 1/2·1/3 = 1/2. Without A: 0; without B: 1/2·1/2 = 1/4.
    counts = {(markov.START, "A"): 1, (markov.START, "B"): 1, ("A", "B"): 1, ("B", "A"): 1,
              ("A", markov.CONVERSION): 1, ("B", markov.NULL): 1}
    base, effects = markov.removal_effects(counts)
    assert base == pytest.approx(0.5, abs=1e-12)
    assert effects == pytest.approx({"A": 1.0, "B": 0.5}, abs=1e-12)
    assert markov.credits(counts, 3) == pytest.approx({"A": 2.0, "B": 1.0}, abs=1e-12)


def test_markov_without_journeys_credits_nothing() -> None:
    assert markov.credits({}, 0) == {}
    assert markov.conversion_probability({("A", markov.NULL): 2}) == 0.0
