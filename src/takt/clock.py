"""Time is a parameter: code takes ``now`` from a :class:`Clock` it is given, never from the wall clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


class FixedClock:
    """A clock for tests and simulations: stands still until moved."""

    def __init__(self, now: datetime):
        self.now = now if now.tzinfo else now.replace(tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now = self.now + timedelta(**delta)
        return self.now
