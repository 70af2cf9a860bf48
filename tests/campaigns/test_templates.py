"""Sandboxed templates: escapes are refused, a missing value uses its default, a failure is a skip, not a crash."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from takt.campaigns.templates import Person, Skip, check, render

ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ traits.__class__ }}",
    "{{ profile.__class__.__base__ }}",
    "{{ cycler.__init__.__globals__.os }}",
    "{{ self._TemplateReference__context }}",
    "{{ (traits|attr('__class__')) }}",
    "{{ 'a' * 100000000 }}",
    "{{ 2 ** 10000000 }}",
    "{% for i in range(10000000) %}x{% endfor %}",
]


@pytest.mark.parametrize("source", ESCAPES)
def test_sandbox_escapes_are_refused(source: str) -> None:
    outcome = render({"text": source}, {}, Person("p1"))
    assert isinstance(outcome, Skip), outcome
    assert outcome.code in ("template_refused", "template_failed")


@pytest.mark.parametrize("source", ESCAPES[:5])
def test_escapes_fail_validation(source: str) -> None:
    assert check(source)


@pytest.mark.parametrize("source", ['{% include "x.html" %}', '{% extends "base" %}', '{% import "m" as m %}',
                                    "{{ traits.a | nofilter }}"])
def test_other_templates_and_unknown_filters_fail_validation(source: str) -> None:
    assert check(source, {"traits.a": "x"})
    assert isinstance(render({"text": source}, {}, Person("p1")), Skip)


def test_unknown_names_get_did_you_mean() -> None:
    [p] = check("Hi {{ trait.firstName }}")
    assert p.hint == "did you mean 'traits'?" and (p.line, p.column) == (1, 7)


@pytest.mark.parametrize("source", [
    "Hi {{ traits.firstName | default('there') }}",
    "{% if traits.firstName is defined %}Hi {{ traits.firstName }}{% else %}Hi{% endif %}",
    "{{ traits.firstName if traits.firstName is defined else 'there' }}",
    "{% for k, v in interests.items() %}{{ k }}{% endfor %}{{ profile }} {{ unsubscribe_url }}",
    "{% set who = traits.firstName | default('you') %}Hi {{ who }}",
])
def test_guarded_references_pass(source: str) -> None:
    assert check(source) == []


@pytest.mark.parametrize("source", ["Hi {{ traits.firstName }}", "{{ interests['destination:new-york'] }}",
                                    "{{ offer.title }}", "{% if true %}{{ traits['city'] }}{% endif %}"])
def test_unguarded_references_fail(source: str) -> None:
    [p] = check(source)
    assert "no default" in p.reason


def test_declared_defaults_satisfy_the_check() -> None:
    assert check("Hi {{ traits.firstName }}", {"traits.firstName": "there"}) == []


def test_html_is_escaped_and_text_is_not() -> None:
    person = Person("p1", traits={"firstName": "<b>Ann</b>"})
    out = render({"html": "<p>{{ traits.firstName }}</p>", "text": "{{ traits.firstName }}"}, {}, person)
    assert out == {"html": "<p>&lt;b&gt;Ann&lt;/b&gt;</p>", "text": "<b>Ann</b>"}


def test_a_missing_value_without_default_is_a_skip_not_an_empty_greeting() -> None:
    out = render({"text": "Hi {{ traits.firstName }}!"}, {}, Person("p1"))
    assert isinstance(out, Skip) and out.code == "template_failed"


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=12)
values = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=20)


@given(name=names, default=values.filter(lambda s: s.strip() != ""), present=st.none() | values)
def test_a_missing_value_uses_the_default(name: str, default: str, present: str | None) -> None:
    source = f"Hi {{{{ traits.{name} }}}}!"
    assert check(source, {f"traits.{name}": default}) == []
    traits = {} if present is None else {name: present}
    out = render({"text": source}, {f"traits.{name}": default}, Person("p1", traits=traits))
    assert isinstance(out, dict)
    expected = present if present else default  # an empty trait counts as missing: never "Hi !"
    assert out["text"] == f"Hi {expected}!"


@given(st.text(max_size=60))
def test_rendering_never_raises(source: str) -> None:
    out = render({"text": source}, {}, Person("p1", traits={"a": 1}, interests={"x": 0.5}))
    assert isinstance(out, dict | Skip)
