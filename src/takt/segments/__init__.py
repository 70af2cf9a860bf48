"""Segments: who is in a group of people, defined in a small typed language.

One syntax tree (:mod:`takt.segments.ast`) with two faces — text (:func:`parse`, :func:`to_text`) and JSON
(:func:`from_json`, :func:`to_json`) — checked against a :class:`Vocabulary` and a :class:`FunctionRegistry`
with positioned :class:`SegmentError`\\ s; read in English by :func:`explain`; compiled to SQL for DuckDB,
PostgreSQL and Spark through sqlglot (:func:`compile_segment`, :func:`to_sql`); and evaluated live for one
person (:func:`evaluate`, :func:`next_change`). ``docs/segments.md`` is the language reference.
"""

from takt.segments.check import check
from takt.segments.compile import compile_segment, to_sql
from takt.segments.errors import SegmentError
from takt.segments.evaluate import evaluate, members, next_change
from takt.segments.explain import explain
from takt.segments.functions import (
    FUNCTIONS,
    FunctionContext,
    FunctionRegistry,
    FunctionSpec,
    register_function,
)
from takt.segments.json_form import from_json, to_json
from takt.segments.parser import parse
from takt.segments.printer import to_text
from takt.segments.resolve import SegmentLookup, check_references, resolve
from takt.segments.view import EventRow, InterestRow, ProfileView, TouchpointRow
from takt.segments.vocabulary import Vocabulary

__all__ = [
    "FUNCTIONS",
    "EventRow",
    "FunctionContext",
    "FunctionRegistry",
    "FunctionSpec",
    "InterestRow",
    "ProfileView",
    "SegmentError",
    "SegmentLookup",
    "TouchpointRow",
    "Vocabulary",
    "check",
    "check_references",
    "compile_segment",
    "evaluate",
    "explain",
    "from_json",
    "members",
    "next_change",
    "parse",
    "register_function",
    "resolve",
    "to_json",
    "to_sql",
    "to_text",
]
