"""The plausible-time window: which times may enter takt as when something happened.

Everything that carries a time into the log or asks for a view "as of" a time passes through here: the
collection API's ``timestamp``/``originalTimestamp``/``sentAt``, imported rows' dates, ``?at=`` and ``"at"``
on the API and the CLI's ``--at``. A time is plausible when it lies between ``earliest`` (decades of CRM
history) and ``now + future`` (a little clock skew, never next year). Outside, a time is *refused* with a
reason, or — where takt derived it from device clocks rather than being told it — *clamped* to when the event
arrived (:mod:`takt.ingest.segment` documents which field gets which).

``parse`` also turns the representable-range failures of :mod:`datetime` (year 0, year 10000, or a year-9999
time whose zone offset carries it past the end) into a reason, never an ``OverflowError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from takt.events.model import parse_time

DEFAULT_EARLIEST = "1970-01-01T00:00:00Z"
DEFAULT_FUTURE_HOURS = 24


def parse_earliest(value: str) -> datetime:
    """The ``ingest.earliest_time`` setting as a time (a date or an ISO 8601 time, UTC if no zone)."""
    try:
        return parse_time(value.strip().replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        raise ValueError(f"expected an ISO 8601 date or time such as 1970-01-01, got {value!r}") from None


class Implausible(ValueError):
    """A time that does not parse, or lies outside the window; ``reason`` says which and why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


_DEFAULT_EARLIEST_TIME = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class TimeWindow:
    earliest: datetime = _DEFAULT_EARLIEST_TIME
    future: timedelta = timedelta(hours=DEFAULT_FUTURE_HOURS)

    @staticmethod
    def from_settings(settings: Any) -> TimeWindow:
        return TimeWindow(earliest=parse_earliest(settings["ingest.earliest_time"]),
                          future=timedelta(hours=settings["ingest.max_future_hours"]))

    def latest(self, now: datetime) -> datetime:
        try:
            return now + self.future
        except OverflowError:
            return datetime.max.replace(tzinfo=UTC)

    def problem(self, t: datetime, now: datetime, what: str) -> str | None:
        """Why ``t`` is not a plausible time for ``what`` (a field name), or ``None`` when it is."""
        if t < self.earliest:
            return f"{what} {_show(t)} is before {_show(self.earliest)}, the earliest time accepted"
        if t > self.latest(now):
            return (f"{what} {_show(t)} is in the future: more than {_hours(self.future)} after the time it was "
                    f"received ({_show(now)})")
        return None

    def contains(self, t: datetime, now: datetime) -> bool:
        return self.problem(t, now, "") is None

    def check(self, t: datetime, now: datetime, what: str) -> datetime:
        """``t`` if plausible, else :class:`Implausible`."""
        reason = self.problem(t, now, what)
        if reason is not None:
            raise Implausible(reason)
        return t

    def parse(self, value: Any, now: datetime, what: str) -> datetime:
        """An ISO 8601 string to a plausible UTC time, or :class:`Implausible` with the reason."""
        return self.check(parse_any(value, what), now, what)


def parse_any(value: Any, what: str) -> datetime:
    """An ISO 8601 string to a UTC time in :mod:`datetime`'s range, or :class:`Implausible`."""
    if not isinstance(value, str):
        raise Implausible(f"{what} must be an ISO 8601 string")
    try:
        return parse_time(value)
    except ValueError:
        raise Implausible(f"{what} is not an ISO 8601 time: {value[:40]!r}") from None
    except OverflowError:
        raise Implausible(f"{what} {value[:40]!r} is outside the range of representable times") from None


def _show(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _hours(d: timedelta) -> str:
    h = d.total_seconds() / 3600
    return f"{h:g} hour{'s' if h != 1 else ''}"
