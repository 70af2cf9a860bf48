"""The two faces of the language: the examples parse with their meaning; text and JSON round-trip."""

from __future__ import annotations

import json
from datetime import date

import pytest
from hypothesis import given, settings

from takt.segments import ast as a
from takt.segments.json_form import from_json, to_json
from takt.segments.parser import parse
from takt.segments.printer import to_text
from takt.segments.vocabulary import Vocabulary
from tests.segments.examples import EXAMPLES
from tests.segments.strategies import any_tree

KINDS = Vocabulary(kinds=frozenset({"identity.unmerge", "interest_shifted"}))

OC = a.EventSource("track", "Order Completed")

MEANINGS: list[tuple[str, a.Condition]] = [
    ('trait.country = "DE"', a.Compare(a.TraitRef("country"), "=", "DE")),
    ("trait.email exists", a.Exists(a.TraitRef("email"))),
    ("trait.email from customer_provided", a.Exists(a.TraitRef("email", "customer_provided"))),
    ('trait.country from crm_import != "AT"', a.Compare(a.TraitRef("country", "crm_import"), "!=", "AT")),
    ("trait.age <= 17.5", a.Compare(a.TraitRef("age"), "<=", 17.5)),
    ("trait.vip = true", a.Compare(a.TraitRef("vip"), "=", True)),
    ('trait.country in ["DE", "AT", 3]', a.InList(a.TraitRef("country"), ("DE", "AT", 3))),
    ('trait.email contains "@x"', a.Contains(a.TraitRef("email"), "@x")),
    ('trait."first name" exists', a.Exists(a.TraitRef("first name"))),
    ('not (trait.a = 1 or trait.b = 2) and trait.c = 3',
     a.And((a.Not(a.Or((a.Compare(a.TraitRef("a"), "=", 1), a.Compare(a.TraitRef("b"), "=", 2)))),
            a.Compare(a.TraitRef("c"), "=", 3)))),
    ("trait.a = 1 or trait.b = 2 and trait.c = 3",
     a.Or((a.Compare(a.TraitRef("a"), "=", 1),
           a.And((a.Compare(a.TraitRef("b"), "=", 2), a.Compare(a.TraitRef("c"), "=", 3)))))),
    ('count(track "Order Completed" in last 365d) >= 2',
     a.Compare(a.Aggregate("count", OC, window=a.LastWindow(a.Duration(365, "d"))), ">=", 2)),
    ('sum(track "Order Completed".revenue in last 90d) > 100',
     a.Compare(a.Aggregate("sum", OC, ("revenue",), window=a.LastWindow(a.Duration(90, "d"))), ">", 100)),
    ('count(page where properties.path contains "/krabi" in last 30d) = 0',
     a.Compare(a.Aggregate("count", a.EventSource("page"), None,
                           a.Contains(a.PropertyRef(("path",)), "/krabi"), a.LastWindow(a.Duration(30, "d"))), "=", 0)),
    ('count(track "Order Completed" between 2026-01-01 and 2026-03-31) >= 1',
     a.Compare(a.Aggregate("count", OC, window=a.BetweenWindow(date(2026, 1, 1), date(2026, 3, 31))), ">=", 1)),
    ('avg(track "Order Completed".price.amount) < 3',
     a.Compare(a.Aggregate("avg", OC, ("price", "amount")), "<", 3)),
    ('min(page "Home".n in last 12h) = 1',
     a.Compare(a.Aggregate("min", a.EventSource("page", "Home"), ("n",), window=a.LastWindow(a.Duration(12, "h"))),
               "=", 1)),
    ('max(track.revenue in last 2w) > 0',
     a.Compare(a.Aggregate("max", a.EventSource("track"), ("revenue",), window=a.LastWindow(a.Duration(2, "w"))),
               ">", 0)),
    ('count("identity.unmerge" in last 1d) > 0',
     a.Compare(a.Aggregate("count", a.EventSource("identity.unmerge"), window=a.LastWindow(a.Duration(1, "d"))),
               ">", 0)),
    ("last_seen within 30d", a.Within(a.ProfileTime("last_seen"), a.Duration(30, "d"))),
    ("first_seen before 2026-01-01", a.Before(a.ProfileTime("first_seen"), date(2026, 1, 1))),
    ("first_seen after 2026-01-01", a.After(a.ProfileTime("first_seen"), date(2026, 1, 1))),
    ('touchpoint("app").count >= 1', a.Compare(a.Touchpoint("app", "count"), ">=", 1)),
    ('touchpoint("app").last_at within 7d', a.Within(a.Touchpoint("app", "last_at"), a.Duration(7, "d"))),
    ('interest("destination:new-york") > 0.4', a.Compare(a.Interest("destination:new-york"), ">", 0.4)),
    ('top_interest = "destination:new-york"', a.Compare(a.TopInterest(), "=", "destination:new-york")),
    ("interest_shifted within 7d", a.Within(a.ProfileTime("interest_shifted"), a.Duration(7, "d"))),
    ('in segment("vip")', a.InSegment("vip")),
    ('not in segment("vip") # a comment\n', a.Not(a.InSegment("vip"))),
]


@pytest.mark.parametrize(("text", "tree"), MEANINGS, ids=[m[0] for m in MEANINGS])
def test_forms_parse_with_their_meaning(text: str, tree: a.Condition) -> None:
    assert parse(text, vocabulary=KINDS) == tree


@pytest.mark.parametrize("text", list(EXAMPLES.values()))
def test_examples_round_trip(text: str) -> None:
    tree = parse(text)
    assert parse(to_text(tree)) == tree
    assert from_json(json.loads(json.dumps(to_json(tree)))) == tree


def test_canonical_text() -> None:
    tree = parse('trait.x=1 and(trait.y  =  "a" or not trait.z exists)')
    assert to_text(tree) == 'trait.x = 1 and (trait.y = "a" or not trait.z exists)'


def test_json_shape() -> None:
    assert to_json(parse('count(track "Order Completed" in last 365d) >= 2')) == {
        "type": "compare", "op": ">=", "right": 2,
        "left": {"type": "aggregate", "func": "count", "source": {"kind": "track", "name": "Order Completed"},
                 "window": {"last": "365d"}},
    }


def test_spans_point_into_the_source() -> None:
    text = 'trait.a = 1 and count(track "X" in last 1d) > 0'
    tree = parse(text)
    assert isinstance(tree, a.And)
    spans = [i.span for i in tree.items]
    assert [text[s.start:s.end] for s in spans if s] == ["trait.a = 1", 'count(track "X" in last 1d) > 0']


@settings(max_examples=150, deadline=None)
@given(any_tree)
def test_text_round_trip(tree: a.Condition) -> None:
    assert parse(to_text(tree), vocabulary=KINDS) == tree


@settings(max_examples=150, deadline=None)
@given(any_tree)
def test_json_round_trip(tree: a.Condition) -> None:
    data = json.loads(json.dumps(to_json(tree)))
    assert from_json(data, vocabulary=KINDS) == tree
