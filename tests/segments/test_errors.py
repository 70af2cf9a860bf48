"""Errors: positioned, the bad text underlined, "did you mean" from the vocabulary, keywords and registry."""

from __future__ import annotations

import pytest

from takt.errors import TaktError
from takt.segments import ast as a
from takt.segments.errors import SegmentError
from takt.segments.functions import FunctionRegistry
from takt.segments.json_form import from_json
from takt.segments.parser import parse
from takt.segments.resolve import check_references, resolve
from takt.segments.vocabulary import Vocabulary

VOCAB = Vocabulary(
    traits=frozenset({"country", "email", "age"}),
    events=frozenset({"Order Completed", "Product Viewed"}),
    pages=frozenset({"Home"}),
    properties=frozenset({"revenue", "path"}),
    interests=frozenset({"destination:new-york"}),
    touchpoints=frozenset({"app", "web"}),
)


def err(text: str, vocabulary: Vocabulary | None = VOCAB, functions: FunctionRegistry | None = None) -> SegmentError:
    with pytest.raises(SegmentError) as info:
        parse(text, vocabulary=vocabulary, functions=functions)
    return info.value


def test_unknown_trait_is_underlined_with_a_suggestion() -> None:
    e = err('trait.age > 3 and\n  trait.contry = "DE"')
    assert (e.line, e.column) == (2, 3)
    assert str(e) == (
        "error: unknown trait 'contry'\n"
        " --> line 2, column 3\n"
        "  |\n"
        '2 |   trait.contry = "DE"\n'
        "  |   ^^^^^^^^^^^^ did you mean 'country'?"
    )
    assert isinstance(e, TaktError) and e.code == "invalid_segment" and e.status == 400
    assert e.errors[0]["line"] == 2 and e.errors[0]["column"] == 3 and "country" in e.errors[0]["hint"]


@pytest.mark.parametrize(
    ("text", "message", "underlined", "suggestion"),
    [
        ('count(track "Order Complete") > 1', "unknown event 'Order Complete'", 'track "Order Complete"',
         "'Order Completed'"),
        ('sum(track "Order Completed".revenu) > 1', "unknown property 'revenu'", None, "'revenue'"),
        ('count(page where properties.pth = "x") > 0', "unknown property 'pth'", "properties.pth", "'path'"),
        ('interest("destination:newyork") > 0.1', "unknown interest", 'interest("destination:newyork")',
         "'destination:new-york'"),
        ('touchpoint("ap").count > 1', "unknown touchpoint 'ap'", None, "'app'"),
        ("trait.email exsts", "expected a comparison", "exsts", "'exists'"),
        ('count(track "Order Completed" in lst 30d) > 1', "expected 'last'", "lst", "'last'"),
        ('coutn(track "Order Completed") > 1', "unknown function 'coutn'", "coutn", "'count'"),
        ("trait.email from customer_provide", "unknown provenance", None, "'customer_provided'"),
        ('count(trak "Order Completed") > 1', "unknown event kind 'trak'", None, "'track'"),
        ('trait.country = "DE" adn trait.age > 3', "unexpected 'adn'", "adn", "'and'"),
        ("last_seen withn 30d", "expected a comparison", "withn", "'within'"),
        ('trait.country = DE', "expected a value", "DE", 'strings are quoted: "DE"'),
        ("contry = 1", "unknown name 'contry'", "contry", "'trait.country'"),
        ('touchpoint("app").cnt >= 1', "a touchpoint has no 'cnt'", "cnt", "'count'"),
    ],
)
def test_positioned_errors(text: str, message: str, underlined: str | None, suggestion: str) -> None:
    e = err(text)
    assert message in e.reason
    assert suggestion in e.hint
    assert e.start is not None and e.end is not None
    if underlined is not None:
        assert text[e.start:e.end] == underlined
    caret_line = str(e).splitlines()[-1]
    assert "^" * max(1, e.end - e.start) in caret_line


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ('trait.country = "DE', "unterminated string"),
        ("trait.age > 3x", "not a number"),
        ("first_seen before 2026-02-30", "not a date"),
        ("trait.age & 3", "unexpected character"),
        ('sum(track "Order Completed") > 1', "sum needs a property"),
        ("last_seen = 3", "is a time"),
        ('count(track "Order Completed") = "x"', "is a number"),
        ('top_interest > "a"', "needs a number"),
        ('top_interest = 1', "is text"),
        ("trait.age within 3d", "not a time"),
        ('interest("destination:new-york") contains "x"', "contains needs text"),
        ('properties.path = "x"', "event property"),
        ('count(track where trait.age > 3) > 1', "about the event's properties"),
        ('count(track "Order Completed" between 2026-03-01 and 2026-01-01) > 0', "ends before it starts"),
        ("trait.age in []", "expected a value"),
        ("(trait.age > 3", "to close the parenthesis"),
        ("trait.age == 3", "unexpected '='"),
        ('trait.country not in ["DE"]', "expected a comparison"),
    ],
)
def test_other_errors(text: str, message: str) -> None:
    e = err(text)
    assert message in e.reason, str(e)
    assert e.line == 1


def test_hints_for_common_slips() -> None:
    assert err("trait.age == 3").hint == "equality is a single ="
    assert err('trait.country not in ["DE"]').hint == "put not in front: not trait.country ..."


def test_unknown_function_until_registered() -> None:
    e = err('contactable("email", "marketing")', functions=FunctionRegistry())  # the global one fills at import
    assert e.reason == "unknown function 'contactable'" and (e.start, e.end) == (0, 11)
    assert "no functions are registered" in e.hint
    from tests.segments.test_functions import REGISTRY

    parse('contactable("email", "marketing")', functions=REGISTRY)
    e = err('contactible("email", "marketing")', functions=REGISTRY)
    assert "'contactable'" in e.hint
    e = err('contactable("email")', functions=REGISTRY)
    assert "takes 2 argument(s)" in e.reason and "contactable(channel: string, purpose: string)" in e.hint
    e = err('score("churn")', functions=REGISTRY)
    assert "is a number, not a condition" in e.reason
    e = err('score(3) > 1', functions=REGISTRY)
    assert "model must be a string" in e.reason
    e = err('contactable("email", "marketing") = 1', functions=REGISTRY)
    assert "cannot be compared" in e.reason


def test_without_vocabulary_any_name_goes() -> None:
    parse('trait.anything = "x" and count(track "Whatever".x where properties.y = 1) > 0', vocabulary=None)


def test_json_errors_name_the_path() -> None:
    with pytest.raises(SegmentError) as info:
        from_json({"type": "and", "items": [{"type": "exists", "left": {"type": "trait", "name": "a"}},
                                            {"type": "compare", "left": {"type": "trait", "name": "a"},
                                             "op": "~", "right": 1}]})
    assert info.value.path == "$.items[1].op"
    with pytest.raises(SegmentError) as info:
        from_json({"type": "compare", "left": {"type": "trait", "name": "contry"}, "op": "=", "right": 1},
                  vocabulary=VOCAB)
    assert info.value.path == "$.left" and "'country'" in info.value.hint
    with pytest.raises(SegmentError) as info:
        from_json({"type": "and", "items": [{"type": "in_segment", "name": "x"}]})
    assert "at least two" in info.value.reason


def test_segment_cycles_are_named() -> None:
    segs = {"a": parse('in segment("b")'), "b": parse('trait.x = 1 and in segment("c")'), "c": parse('in segment("a")')}
    with pytest.raises(SegmentError) as info:
        resolve(parse('in segment("a")'), segs)
    assert "cycle: a → b → c → a" in info.value.reason
    with pytest.raises(SegmentError) as info:
        check_references("c", parse('in segment("a")'), {"a": segs["a"], "b": segs["b"]})
    assert "c → a → b → c" in info.value.reason


def test_unknown_segment_suggests() -> None:
    with pytest.raises(SegmentError) as info:
        resolve(parse('in segment("vipp")'), {"vip": parse("trait.x exists")})
    assert "unknown segment 'vipp'" in info.value.reason and "'vip'" in info.value.hint
    assert resolve(parse('in segment("vip")'), lambda n: parse("trait.x exists") if n == "vip" else None) == \
        a.Exists(a.TraitRef("x"))
