"""The live evaluator's rules for missing values, and next_change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from takt.segments import ast as a
from takt.segments.evaluate import evaluate, next_change
from takt.segments.explain import explain
from takt.segments.parser import parse
from takt.segments.view import EventRow, InterestRow, ProfileView
from tests.segments.examples import EXAMPLES, SEGMENTS_TEXT
from tests.segments.strategies import NOW, data_tree, profiles

NOBODY = ProfileView("x")
DE = ProfileView("de", traits={"country": ("DE", "observed"), "n": ("12", "observed"), "flag": (True, "observed")})


@pytest.mark.parametrize(
    ("text", "nobody", "de"),
    [
        ('trait.country = "DE"', False, True),
        ('trait.country != "DE"', False, False),  # a comparison with a missing value is false ...
        ('not trait.country = "DE"', True, False),  # ... and not turns false into true
        ('not trait.country != "DE"', True, True),
        ("trait.n > 11", False, True),  # "12" is numeric
        ('trait.n = "12"', False, True),
        ("trait.country > 1", False, False),  # "DE" is not a number
        ("trait.flag = true", False, True),
        ('trait.flag = "true"', False, True),  # values compare by their text form
        ('interest("k") < 0.1', True, True),  # a missing interest is 0
        ('touchpoint("app").count = 0', True, True),
        ('sum(track "X".revenue) = 0', True, True),  # the sum of nothing is 0
        ('avg(track "X".revenue) = 0', False, False),  # the average of nothing is missing
        ('not avg(track "X".revenue) exists', True, True),
        ("last_seen within 30d", False, False),
        ("not last_seen within 30d", True, True),
    ],
)
def test_missing_values(text: str, nobody: bool, de: bool) -> None:
    tree = parse(text)
    assert evaluate(tree, NOBODY, NOW) is nobody
    assert evaluate(tree, DE, NOW) is de


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate(parse("trait.x exists"), NOBODY, datetime(2026, 1, 1))


def test_events_after_now_do_not_count_yet() -> None:
    view = ProfileView("p", events=(EventRow("track", NOW + timedelta(hours=1), event="X"),))
    tree = parse('count(track "X") >= 1')
    assert not evaluate(tree, view, NOW)
    assert next_change(tree, view, NOW) == NOW + timedelta(hours=1)


def test_leaving_a_window_on_day_31() -> None:
    bought = NOW - timedelta(days=5, hours=3)
    view = ProfileView("p", events=(EventRow("track", bought, event="Order Completed"),))
    tree = parse('count(track "Order Completed" in last 30d) >= 1')
    assert evaluate(tree, view, NOW)
    t = next_change(tree, view, NOW)
    assert t == bought + timedelta(days=30)
    assert evaluate(tree, view, t - timedelta(microseconds=1)) and not evaluate(tree, view, t)
    assert next_change(tree, view, t) is None


def test_entering_by_leaving() -> None:
    """``= 0`` in a window: a member again once the last order leaves it."""
    view = ProfileView("p", events=(EventRow("track", NOW - timedelta(days=1), event="O"),
                                    EventRow("track", NOW - timedelta(days=2), event="O")))
    tree = parse('count(track "O" in last 7d) = 0')
    assert next_change(tree, view, NOW) == NOW + timedelta(days=6)


def test_within_expires() -> None:
    view = ProfileView("p", last_seen=NOW - timedelta(days=29))
    assert next_change(parse("last_seen within 30d"), view, NOW) == NOW + timedelta(days=1)
    assert next_change(parse('trait.x = 1'), view, NOW) is None


def test_interest_decays_below_threshold() -> None:
    view = ProfileView("p", interests=(InterestRow("k", 0.8, NOW, 10.0),))
    tree = parse('interest("k") > 0.4')
    t = next_change(tree, view, NOW)
    assert t is not None and abs(t - (NOW + timedelta(days=10))) < timedelta(milliseconds=2)
    assert not evaluate(tree, view, t) and evaluate(tree, view, NOW + timedelta(days=9, hours=23))


def _has_interest(tree: a.Condition) -> bool:
    from takt.segments.printer import to_text

    return "interest(" in to_text(tree)


@settings(max_examples=100, deadline=None)
@given(tree=data_tree.filter(lambda t: not _has_interest(t)), views=profiles(n_max=2),
       frac=st.floats(0, 1, exclude_max=True))
def test_next_change_is_exact(tree: a.Condition, views: list[ProfileView], frac: float) -> None:
    """Membership is constant from now until next_change, and differs at it (no change at all when None)."""
    segs = {"buyers": parse(SEGMENTS_TEXT["buyers"])}
    for view in views:
        current = evaluate(tree, view, NOW, segments=segs)
        t = next_change(tree, view, NOW, segments=segs)
        if t is None:
            assert evaluate(tree, view, NOW + timedelta(days=2000), segments=segs) == current
            continue
        assert t > NOW
        assert evaluate(tree, view, t, segments=segs) != current
        assert evaluate(tree, view, t - timedelta(microseconds=1), segments=segs) == current
        assert evaluate(tree, view, NOW + (t - NOW) * frac, segments=segs) == current


@pytest.mark.parametrize(
    ("name", "english"),
    [
        ("explained", "people who completed an order at least twice in the last 365 days and whose country is DE"),
        ("trait_exists", "people who have an email"),
        ("trait_provenance", "people who have an email (given by the customer)"),
        ("revenue_last_90d", "people whose total revenue over completed orders in the last 90 days is more than 100"),
        ("no_krabi_pages", "people who never viewed a page whose path contains “/krabi” in the last 30 days"),
        ("orders_between", "people who completed an order at least once between 2026-01-01 and 2026-03-31"),
        ("last_seen", "people who were last seen in the last 30 days"),
        ("first_seen", "people who were first seen before 2026-01-01"),
        ("interest", "people whose interest in destination:new-york is more than 0.4"),
        ("top_interest", "people whose top interest is destination:new-york"),
        ("interest_shifted", "people who changed their top interest in the last 7 days"),
        ("segment_reference", "people who are in segment buyers and whose country is DE"),
        ("boolean", "people who are not people (whose country is DE or whose vip is true) and whose age is at most 40"),
        ("in_list", "people whose country is DE or AT"),
    ],
)
def test_explain(name: str, english: str) -> None:
    assert explain(parse(EXAMPLES[name])) == english


def test_explain_every_example_is_plain_text() -> None:
    for text in EXAMPLES.values():
        english = explain(parse(text))
        assert english.startswith("people ")
        for syntax in ("trait.", "properties.", "count(", "sum(", '"', "_"):
            assert syntax not in english, english


def test_now_is_a_parameter() -> None:
    view = ProfileView("p", events=(EventRow("track", datetime(2026, 1, 10, tzinfo=UTC), event="O"),))
    tree = parse('count(track "O" in last 30d) >= 1')
    assert evaluate(tree, view, datetime(2026, 1, 20, tzinfo=UTC))
    assert not evaluate(tree, view, datetime(2026, 3, 1, tzinfo=UTC))
