"""The function registry: names other packages provide to the language without touching the parser.

Policy registers ``contactable("email", "marketing")``, models register ``score("churn")``. A function
declares its parameters, what it returns (a condition: ``bool``; or a value to compare: ``number`` /
``string``), how it reads in English, how it compiles to SQL (a sqlglot expression over the profile id
column) and how it evaluates live on a :class:`~takt.segments.view.ProfileView`. Until a name is registered,
using it is an "unknown function" error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeAlias

from sqlglot import exp

from takt.segments.ast import Value
from takt.segments.view import ProfileView
from takt.segments.vocabulary import Vocabulary

ArgType: TypeAlias = Literal["string", "number"]
ReturnType: TypeAlias = Literal["bool", "number", "string"]
Problem: TypeAlias = tuple[str, str]
"""What a function's own check finds wrong with its arguments: (message, hint)."""


@dataclass(frozen=True, slots=True)
class FunctionContext:
    """What a function's SQL compilation gets: the outer query's profile id column, ``now`` and the dialect."""

    profile_id: exp.Expression
    now: datetime
    dialect: str


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    name: str
    params: tuple[tuple[str, ArgType], ...]
    returns: ReturnType
    explain: Callable[[tuple[Value, ...]], str]
    """English: for ``bool`` a clause that follows "people who/whose" ("can be contacted by email for
    marketing"); for a value a noun phrase ("the churn score")."""
    compile: Callable[[tuple[Value, ...], FunctionContext], exp.Expression]
    evaluate: Callable[[tuple[Value, ...], ProfileView, datetime], Any]
    """Live value: a bool for ``bool``; a number/string, or ``None`` when missing."""
    time_dependent: bool = False
    """Whether the value may change with ``now`` alone (``next_change`` cannot predict such functions)."""
    example: str = ""
    """A use, for hints: ``score("churn_30d") > 0.5``."""
    check: Callable[[tuple[Value, ...], Vocabulary], Problem | None] | None = None
    """The function's own check of its (well-typed) arguments against the workspace's names: ``score`` knows
    the models, ``clv`` its fields. A problem is an error pointing at the call."""


class FunctionRegistry:
    def __init__(self, specs: tuple[FunctionSpec, ...] = ()):
        self._specs: dict[str, FunctionSpec] = {}
        for spec in specs:
            self.register(spec)

    def register(self, spec: FunctionSpec) -> FunctionSpec:
        if spec.name in RESERVED:
            raise ValueError(f"{spec.name!r} is a word of the segment language")
        old = self._specs.get(spec.name)
        if old is not None and old != spec:
            raise ValueError(f"segment function {spec.name!r} registered twice")
        self._specs[spec.name] = spec
        return spec

    def get(self, name: str) -> FunctionSpec | None:
        return self._specs.get(name)

    def names(self) -> list[str]:
        return sorted(self._specs)

    def __iter__(self) -> Iterator[FunctionSpec]:
        return iter(self._specs.values())

    def __contains__(self, name: object) -> bool:
        return name in self._specs


RESERVED = frozenset(
    {
        "and", "or", "not", "in", "exists", "from", "contains", "where", "last", "between", "within",
        "before", "after", "segment", "true", "false", "trait", "properties", "interest", "top_interest",
        "touchpoint", "first_seen", "last_seen", "interest_shifted", "count", "sum", "avg", "min", "max",
    }
)

FUNCTIONS = FunctionRegistry()
"""The process-wide registry packages add to at import time."""


def register_function(spec: FunctionSpec) -> FunctionSpec:
    return FUNCTIONS.register(spec)
