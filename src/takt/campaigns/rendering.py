"""The orchestrator's renderer: the campaign's sandboxed Jinja2 templates (:mod:`takt.campaigns.templates`) for
one person's context (:meth:`takt.campaigns.people.People.context`). A template that cannot render for this
person (a missing value without a default, a sandbox refusal) raises :class:`TemplateSkipped`, which the
orchestrator records as the person's skip with the template's reason code; it never sends an empty greeting."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from takt.campaigns.model import Template
from takt.campaigns.templates import Person, Skip, render
from takt.errors import TaktError

Renderer = Callable[[Template, Mapping[str, Any]], dict[str, str]]
"""(template, person context) → the rendered fields; raises a :class:`~takt.errors.TaktError` whose code is the
person's skip reason."""


class TemplateSkipped(TaktError):
    def __init__(self, skip: Skip) -> None:
        super().__init__(skip.reason, code=skip.code)


def _score(value: Any) -> float | None:
    """An interest's score as the fold keeps it (``(score, as_of)``) or a plain number."""
    if isinstance(value, list | tuple) and value:
        value = value[0]
    if isinstance(value, dict):
        value = value.get("score")
    return float(value) if isinstance(value, int | float) else None


def jinja_renderer(template: Template, context: Mapping[str, Any]) -> dict[str, str]:
    """The :data:`Renderer` over the sandboxed templates."""
    interests = {k: s for k, v in (context.get("interests") or {}).items() if (s := _score(v)) is not None}
    person = Person(profile_id=str(context.get("profile_id", "")), traits=context.get("traits") or {},
                    interests=interests, offer=context.get("offer"),
                    unsubscribe_url=str(context.get("unsubscribe_url") or ""))
    out = render(template.fields, template.defaults, person)
    if isinstance(out, Skip):
        raise TemplateSkipped(out)
    return out
