"""The segment language's typed syntax tree.

One tree, two faces: the text form (:mod:`takt.segments.parser` / :func:`takt.segments.printer.to_text`) and
the JSON form (:mod:`takt.segments.json_form`). Every node is a frozen dataclass; equality ignores where in the
source a node came from (``span``), so ``parse(to_text(ast)) == ast`` holds.

Two kinds of node: *operands* (something a profile has a value for: a trait, an event aggregate, an
interest, ...) and *conditions* (true or false for a profile). The meaning of every node, with the rules for
missing values, is in ``docs/segments.md``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date
from typing import Literal as L
from typing import TypeAlias

Value: TypeAlias = str | int | float | bool
"""A literal: a string, a number or a boolean."""

CompareOp: TypeAlias = L["=", "!=", "<", "<=", ">", ">="]
COMPARE_OPS: tuple[str, ...] = ("=", "!=", "<", "<=", ">", ">=")

AggregateFunc: TypeAlias = L["count", "sum", "avg", "min", "max"]
AGGREGATE_FUNCS: tuple[str, ...] = ("count", "sum", "avg", "min", "max")

DurationUnit: TypeAlias = L["h", "d", "w"]
DURATION_UNITS: dict[str, int] = {"h": 3600, "d": 86400, "w": 7 * 86400}
"""Seconds in one unit."""

PROFILE_TIMES: tuple[str, ...] = ("first_seen", "last_seen", "interest_shifted")
TOUCHPOINT_FIELDS: tuple[str, ...] = ("count", "last_at")


@dataclass(frozen=True, slots=True)
class Span:
    """Where a node came from in the text form: 0-based character offsets ``[start, end)``."""

    start: int
    end: int


# ---------------------------------------------------------------- time
@dataclass(frozen=True, slots=True)
class Duration:
    amount: int
    unit: DurationUnit

    @property
    def seconds(self) -> int:
        return self.amount * DURATION_UNITS[self.unit]


@dataclass(frozen=True, slots=True)
class LastWindow:
    """``in last 30d``: events with ``now - duration < ts <= now``."""

    duration: Duration


@dataclass(frozen=True, slots=True)
class BetweenWindow:
    """``between 2026-01-01 and 2026-03-31``: both days included (UTC), and ``ts <= now``."""

    start: date
    end: date


Window: TypeAlias = LastWindow | BetweenWindow


# ---------------------------------------------------------------- operands
@dataclass(frozen=True, slots=True)
class TraitRef:
    """``trait.country`` (or ``trait.email from customer_provided``: the value only if that is its provenance)."""

    name: str
    provenance: str | None = None
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class PropertyRef:
    """``properties.path`` inside an event filter: a property of the event being filtered."""

    path: tuple[str, ...]
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class EventSource:
    """``track "Order Completed"``, ``page``, ``page "Home"``: events of a kind, optionally of one name."""

    kind: str
    name: str | None = None
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Aggregate:
    """``sum(track "Order Completed".revenue where ... in last 90d)``."""

    func: AggregateFunc
    source: EventSource
    prop: tuple[str, ...] | None = None
    where: Condition | None = None
    window: Window | None = None
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Interest:
    """``interest("destination:new-york")``: the decayed score at ``now``; 0 when absent."""

    key: str
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class TopInterest:
    """``top_interest``: the profile's strongest interest key."""

    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Touchpoint:
    """``touchpoint("app").count`` (0 when absent) or ``touchpoint("app").last_at``."""

    touchpoint: str
    field: L["count", "last_at"] = "count"
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class ProfileTime:
    """``first_seen``, ``last_seen``, ``interest_shifted``."""

    field: L["first_seen", "last_seen", "interest_shifted"]
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Call:
    """``score("churn")`` or ``contactable("email", "marketing")``: a function from the registry."""

    name: str
    args: tuple[Value, ...] = ()
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, kw_only=True)


Operand: TypeAlias = TraitRef | PropertyRef | Aggregate | Interest | TopInterest | Touchpoint | ProfileTime | Call


# ---------------------------------------------------------------- conditions
@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Condition, ...]
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Condition, ...]
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Not:
    item: Condition
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Compare:
    left: Operand
    op: CompareOp
    right: Value
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class InList:
    left: Operand
    values: tuple[Value, ...]
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Contains:
    left: Operand
    needle: str
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Exists:
    left: Operand
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Within:
    """``last_seen within 30d``: ``now - duration < t <= now``."""

    left: Operand
    duration: Duration
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Before:
    """``first_seen before 2026-01-01``: before that day starts (UTC)."""

    left: Operand
    day: date
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class After:
    """``first_seen after 2026-01-01``: after that day ends (UTC)."""

    left: Operand
    day: date
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class InSegment:
    """``in segment("vip")``: a member of another segment (resolved through a lookup)."""

    name: str
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class CallCondition:
    """A boolean function used as a condition: ``contactable("email", "marketing")``."""

    call: Call
    span: Span | None = dataclasses.field(default=None, compare=False, repr=False, kw_only=True)


Condition: TypeAlias = (
    And | Or | Not | Compare | InList | Contains | Exists | Within | Before | After | InSegment | CallCondition
)
Node: TypeAlias = Condition | Operand

ATOMS = (Compare, InList, Contains, Exists, Within, Before, After)
"""Conditions about one operand."""


def children(node: Condition) -> tuple[Condition, ...]:
    if isinstance(node, And | Or):
        return node.items
    if isinstance(node, Not):
        return (node.item,)
    return ()


def walk(node: Condition) -> list[Condition]:
    """Every condition in the tree, parents first (not descending into event filters)."""
    out: list[Condition] = [node]
    for child in children(node):
        out.extend(walk(child))
    return out


def operand_of(node: Condition) -> Operand | None:
    return node.left if isinstance(node, ATOMS) else None
