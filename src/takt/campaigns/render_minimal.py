"""A minimal template rendering for the orchestrator until the sandboxed Jinja2 templates
(:mod:`takt.campaigns.templates`) are in: ``{{ traits.firstName }}``-style names looked up in the person's
context, a declared default for a missing one, and :class:`MissingValue` when neither exists (never an empty
greeting). The orchestrator takes any :data:`Renderer`; swap this one out by passing another."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from takt.campaigns.model import Template
from takt.errors import TaktError

Renderer = Callable[[Template, Mapping[str, Any]], dict[str, str]]
"""(template, person context) → the rendered fields."""

_NAME = re.compile(r"\{\{\s*([A-Za-z_][\w.:-]*)\s*\}\}")


class MissingValue(TaktError):
    def __init__(self, name: str) -> None:
        super().__init__(f"the template needs {name!r}, which the person lacks and has no default",
                         code="template_value_missing")


def _lookup(context: Mapping[str, Any], dotted: str) -> Any:
    cur: Any = context
    for part in dotted.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur


def render_minimal(template: Template, context: Mapping[str, Any]) -> dict[str, str]:
    def value(m: re.Match[str]) -> str:
        name = m.group(1)
        v = _lookup(context, name)
        if v is None or v == "":
            if name in template.defaults:
                return template.defaults[name]
            raise MissingValue(name)
        return str(v)

    return {f: _NAME.sub(value, src) for f, src in template.fields.items()}
