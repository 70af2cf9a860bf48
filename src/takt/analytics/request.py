"""What the API and the CLI ask an analysis: the parameters as text (query parameters, options), checked once
here into a :class:`Ask` (every bad value a 400 / usage error naming the parameter), its scope, and the run."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from takt.analytics.attribution import attribution
from takt.analytics.config import AnalyticsConfig
from takt.analytics.engine import Engine
from takt.analytics.paths import MAX_LENGTH, paths
from takt.analytics.scope import Scope
from takt.analytics.touchpoints import BUCKETS, touchpoints
from takt.errors import TaktError, invalid

KINDS = ("touchpoints", "paths", "attribution")
DEFAULT_DAYS = 90
PARAMETERS = ("segment", "definition", "from", "to", "goal", "days", "length", "top", "trend", "half_life")


@dataclass(frozen=True)
class Ask:
    kind: str
    start: datetime
    end: datetime
    segment: str | None = None
    """A stored segment's name."""
    definition: str | None = None
    """A segment definition (not stored)."""
    goal: str | None = None
    days: float | None = None
    length: int = 5
    top: int = 20
    trend: str = "day"
    half_lives: tuple[float, ...] = (7.0,)


def _bad(field: str, reason: str) -> TaktError:
    return invalid(f"{field}: {reason}", errors=[{"field": field, "reason": reason}])


EARLIEST_YEAR, LATEST_YEAR = 1900, 9998
"""A period's bounds lie within these years (beyond them a date cannot be moved to UTC or shifted by days)."""


def _time(field: str, raw: str) -> datetime:
    try:
        t = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
        t = (t if t.tzinfo is not None else t.replace(tzinfo=UTC)).astimezone(UTC)
    except ValueError:
        raise _bad(field, f"expected an ISO 8601 date or time (e.g. 2026-11-01), got {raw!r}") from None
    except OverflowError:
        t = None
    if t is None or not EARLIEST_YEAR <= t.year <= LATEST_YEAR:
        raise _bad(field, f"must lie between the years {EARLIEST_YEAR} and {LATEST_YEAR}, got {raw!r}")
    return t


def _number(field: str, raw: str, lo: float, hi: float, integer: bool = False) -> float:
    try:
        v = float(int(raw)) if integer else float(raw)
    except ValueError:
        raise _bad(field, f"expected {'an integer' if integer else 'a number'}, got {raw!r}") from None
    if not lo <= v <= hi:
        raise _bad(field, f"must be between {lo:g} and {hi:g}, got {raw}")
    return v


def ask_from(kind: str, params: Mapping[str, str | None], now: datetime) -> Ask:
    """An :class:`Ask` from text parameters (missing ones: the defaults; ``to`` defaults to ``now`` and ``from``
    to 90 days before it)."""
    if kind not in KINDS:
        raise _bad("kind", f"one of {', '.join(KINDS)}, not {kind!r}")
    unknown = sorted(k for k, v in params.items() if v is not None and k not in PARAMETERS)
    if unknown:
        raise invalid(f"unknown parameter{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}",
                      code="unknown_field", errors=[{"field": k, "reason": "unknown parameter"} for k in unknown])
    p = {k: v for k, v in params.items() if v not in (None, "")}
    end = _time("to", p["to"]) if "to" in p else now
    start = _time("from", p["from"]) if "from" in p else end - timedelta(days=DEFAULT_DAYS)
    if start >= end:
        raise _bad("from", "the period must start before it ends (from < to)")
    if "segment" in p and "definition" in p:
        raise _bad("segment", "give a stored segment's name or a definition, not both")
    trend = p.get("trend", "day")
    if trend not in BUCKETS:
        raise _bad("trend", f"one of {', '.join(BUCKETS)}, not {trend!r}")
    half = p.get("half_life", "7")
    half_lives = tuple(_number("half_life", h, 0.01, 3650) for h in half.split(",") if h.strip())
    if not half_lives:
        raise _bad("half_life", "give one or more half-lives in days (e.g. 7 or 1,7,30)")
    return Ask(kind=kind, start=start, end=end, segment=p.get("segment"), definition=p.get("definition"),
               goal=p.get("goal"), days=_number("days", p["days"], 0.01, 3650) if "days" in p else None,
               length=int(_number("length", p.get("length", "5"), 1, MAX_LENGTH, integer=True)),
               top=int(_number("top", p.get("top", "20"), 1, 1000, integer=True)), trend=trend,
               half_lives=half_lives)


def scope_of(ask: Ask, storage: Any, parse_definition: Callable[[str], Any] | None = None) -> Scope:
    """The scope: a stored segment (by name), a definition (parsed by ``parse_definition``, which checks it
    against the workspace's names), or everyone."""
    from takt.segments import parse
    from takt.segments.store import segment_store

    if ask.segment is None and ask.definition is None:
        return Scope(ask.start, ask.end)
    store = segment_store(storage)
    lookup = store.lookup()
    if ask.segment is not None:
        v = store.get(ask.segment)
        return Scope(ask.start, ask.end, segment=v.tree, segments=lookup, label=f"{v.name} v{v.version}")
    assert ask.definition is not None
    tree = (parse_definition or parse)(ask.definition)
    return Scope(ask.start, ask.end, segment=tree, segments=lookup, label=ask.definition)


def run(ask: Ask, engine: Engine, scope: Scope, config: AnalyticsConfig) -> dict[str, Any]:
    if ask.kind == "touchpoints":
        return touchpoints(engine, scope, config, goal=ask.goal, trend=ask.trend)
    if ask.kind == "paths":
        return paths(engine, scope, config, goal=ask.goal, days=ask.days, length=ask.length, top=ask.top)
    return attribution(engine, scope, config, goal=ask.goal, days=ask.days, half_lives=ask.half_lives)
