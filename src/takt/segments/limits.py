"""How big a segment definition may be: windows, dates, numbers and nesting that a database and Python's
``datetime`` can hold without overflowing, with room to spare (``docs/segments.md``, *Limits*).

The parser refuses a value beyond these where it stands in the text (line, column, underline); the checker
refuses it at its JSON path in the JSON form. Evaluation stays overflow-safe for trees that got past neither
(stored before the limits existed): see :func:`takt.segments.semantics.shift`.
"""

from __future__ import annotations

import math
from datetime import date

from takt.segments import ast as a

MAX_NESTING = 32
"""Deepest nesting of conditions: parentheses, ``not`` and ``where`` filters."""

MAX_WINDOW_DAYS = 36_525
"""Longest window or ``within`` duration: 100 years (36525d, 5217w, 876600h)."""

EARLIEST_DAY = date(1900, 1, 1)
LATEST_DAY = date(2999, 12, 31)
"""Dates of ``before``, ``after`` and ``between``."""

MAX_NUMBER = 1e15
"""Largest magnitude of a number (a million billion: exact in a double, any SQL engine reads it)."""

MAX_DIGITS = 40
"""Longest run of digits the lexer reads as one number or duration."""


def duration_problem(d: a.Duration) -> str | None:
    if d.amount <= 0:
        return None  # the checker's own message ("must be positive")
    if d.seconds > MAX_WINDOW_DAYS * 86_400:
        return (f"{d.amount}{d.unit} is longer than {MAX_WINDOW_DAYS}d (100 years), the longest window "
                "a definition may hold")
    return None


def day_problem(d: date) -> str | None:
    if not EARLIEST_DAY <= d <= LATEST_DAY:
        return (f"{d.isoformat()} is outside {EARLIEST_DAY.isoformat()} … {LATEST_DAY.isoformat()}, the dates a "
                "definition may hold")
    return None


def number_problem(v: a.Value) -> str | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    if isinstance(v, float) and not math.isfinite(v):
        return f"{v} is not a finite number"
    if abs(v) > MAX_NUMBER:
        shown = v if isinstance(v, float) or len(str(v)) <= 24 else f"{str(v)[:20]}…"
        return f"{shown} is beyond ±1e15, the largest number a definition may hold"
    return None
