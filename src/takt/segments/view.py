"""The in-memory view of one profile the live evaluator reads: the same facts the relational tables hold."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class EventRow:
    """One event of the person (a row of ``profile_events``); ``properties`` is the decoded JSON object."""

    kind: str
    ts: datetime
    event: str | None = None
    name: str | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class InterestRow:
    key: str
    score: float
    as_of: datetime
    half_life_days: float


@dataclass(frozen=True, slots=True)
class TouchpointRow:
    count: int
    last_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ProfileView:
    """One profile at a glance. ``traits`` maps a name to ``(value, provenance)`` with the value decoded from
    JSON (``None`` for JSON null)."""

    profile_id: str
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    top_interest: str | None = None
    interest_shifted_at: datetime | None = None
    traits: Mapping[str, tuple[Any, str]] = field(default_factory=dict)
    interests: tuple[InterestRow, ...] = ()
    touchpoints: Mapping[str, TouchpointRow] = field(default_factory=dict)
    events: tuple[EventRow, ...] = ()
