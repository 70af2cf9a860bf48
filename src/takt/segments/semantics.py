"""The value rules shared by the evaluator and mirrored by the SQL compiler (``docs/segments.md``).

- A trait or property value is read through its **text form**, the way SQL's JSON text extraction reads it:
  a string is itself, ``true``/``false`` are ``"true"``/``"false"``, a number is its decimal digits, JSON
  null and absence are *missing*.
- A value is **numeric** when its text form is a decimal number (``-12``, ``3.5``, ``1e3``); comparing a
  non-numeric or missing value with a number is false.
- Every condition is true or false — never unknown: a comparison involving a missing value is false, and
  ``not`` turns false into true. So ``not trait.country = "DE"`` includes people without a country, while
  ``trait.country != "DE"`` does not.
- Windows and time conditions only count what has happened: ``ts <= now``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from takt.segments import ast as a

NUMERIC_RE = r"^-?[0-9]+([.][0-9]+)?([eE][-+]?[0-9]+)?$"
_NUMERIC = re.compile(NUMERIC_RE[1:-1])  # used with fullmatch: "12\n" is not a number
DAY = timedelta(days=1)
FIRST_TIME = datetime.min.replace(tzinfo=UTC)
LAST_TIME = datetime.max.replace(tzinfo=UTC)
MIN_DECAY_EXPONENT = -1000.0
"""A decayed score never falls below ``score · 2^-1000`` (≈ 1e-301): the same floor in SQL, where PostgreSQL
refuses a ``power`` that underflows."""


def text_of(value: Any) -> str | None:
    """The text form of a decoded JSON value (``None`` when missing)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def number_of(text: str | None) -> float | None:
    if text is None or not _NUMERIC.fullmatch(text):
        return None
    return float(text)


def literal_text(v: a.Value) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return v if isinstance(v, str) else str(v)


def is_number(v: a.Value) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def compare_numbers(x: float, op: str, y: float) -> bool:
    if op == "=":
        return x == y
    if op == "!=":
        return x != y
    if op == "<":
        return x < y
    if op == "<=":
        return x <= y
    if op == ">":
        return x > y
    return x >= y


def compare_text(text: str | None, op: str, lit: a.Value) -> bool:
    """A JSON-valued operand (its text form) against a literal."""
    if text is None:
        return False
    if is_number(lit):
        n = number_of(text)
        return n is not None and compare_numbers(n, op, float(lit))
    s = literal_text(lit)
    return text == s if op == "=" else text != s


def day_start(d: date) -> datetime:
    return datetime.combine(d, time(0), tzinfo=UTC)


def day_end(d: date) -> datetime:
    """The start of the day after ``d`` (the last representable instant for 9999-12-31)."""
    return shift(day_start(d), DAY.total_seconds())


def shift(t: datetime, seconds: float) -> datetime:
    """``t`` moved by ``seconds``, saturating at the first and last representable instants (a window of
    10^12 days, stored before definitions were limited, must not overflow)."""
    try:
        return t + timedelta(seconds=seconds)
    except OverflowError:
        return LAST_TIME if seconds > 0 else FIRST_TIME


def get_path(doc: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    cur: Any = doc
    for p in path:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(p)
    return cur


def window_bounds(window: a.Window | None, now: datetime) -> tuple[datetime | None, bool, datetime]:
    """``(lower, lower_inclusive, upper_inclusive)``: an event counts when ``lower <(=) ts <= upper``."""
    if window is None:
        return None, False, now
    if isinstance(window, a.LastWindow):
        return shift(now, -window.duration.seconds), False, now
    end = day_end(window.end)
    upper = min(now, end - timedelta(microseconds=1))
    return day_start(window.start), True, upper


def in_window(ts: datetime, window: a.Window | None, now: datetime) -> bool:
    lower, inclusive, upper = window_bounds(window, now)
    if ts > upper:
        return False
    if lower is None:
        return True
    return ts >= lower if inclusive else ts > lower


def decayed(score: float, as_of: datetime, half_life_days: float, now: datetime) -> float:
    """``score · 2^(−age/half-life)`` with the age at least 0 (a score is not grown by reading it before its
    ``as_of``, as :func:`takt.profiles.interests.decay`) and the exponent at least :data:`MIN_DECAY_EXPONENT`:
    no overflow for a far-future ``as_of``, no underflow for a far-past one or a huge half-life."""
    days = max(0.0, (now - as_of).total_seconds() / 86400.0)
    return float(score * math.pow(2.0, max(MIN_DECAY_EXPONENT, -days / half_life_days)))
