"""Contact policy settings, and :class:`PolicySettings`, the frozen values :func:`~takt.policy.decide.decide`
takes.

There is deliberately no setting for the provenance gate: contact points from third parties or observation are
never used for outreach, whatever the configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from takt.errors import TaktError
from takt.settings import Settings, register


def parse_clock(value: str) -> time:
    """``"21:00"`` → ``time(21, 0)``; anything else is a :class:`TaktError`."""
    try:
        hours, minutes = value.split(":")
        if len(hours) != 2 or len(minutes) != 2:
            raise ValueError
        return time(int(hours), int(minutes))
    except (ValueError, AttributeError):
        raise TaktError(f"expected a time of day as HH:MM, got {value!r}", code="invalid_setting") from None


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (e.g. ``Europe/Berlin``); an unknown name is a :class:`TaktError`."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise TaktError(f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin)",
                        code="invalid_time_zone") from None


def _clock_check(v: Any) -> None:
    try:
        parse_clock(v)
    except TaktError as e:
        raise ValueError(e.message) from None


def _zone_check(v: Any) -> None:
    try:
        zone(v)
    except TaktError as e:
        raise ValueError(e.message) from None


def _at_least_one(v: Any) -> None:
    if v < 1:
        raise ValueError(f"must be at least 1, got {v!r}")


def _non_negative(v: Any) -> None:
    if v < 0:
        raise ValueError(f"must not be negative, got {v!r}")


DEFAULTS: dict[str, Any] = {
    "policy.email_marketing_requires_double_opt_in": True,
    "policy.max_marketing_per_window": 3,
    "policy.pressure_window_days": 7,
    "policy.max_marketing_per_day": 1,
    "policy.quiet_hours_start": "21:00",
    "policy.quiet_hours_end": "08:00",
    "policy.complaint_cooloff_days": 30,
    "policy.default_time_zone": "UTC",
}

register("policy.email_marketing_requires_double_opt_in",
         DEFAULTS["policy.email_marketing_requires_double_opt_in"],
         "Email marketing consent counts only once confirmed by double opt-in (evidence method "
         "double_opt_in).")
register("policy.max_marketing_per_window", DEFAULTS["policy.max_marketing_per_window"],
         "Most marketing messages one person receives in the pressure window, across all campaigns and "
         "channels.", check=_non_negative)
register("policy.pressure_window_days", DEFAULTS["policy.pressure_window_days"],
         "Length of the pressure window in days (rolling).", check=_at_least_one)
register("policy.max_marketing_per_day", DEFAULTS["policy.max_marketing_per_day"],
         "Most marketing messages one person receives in any 24 hours.", check=_non_negative)
register("policy.quiet_hours_start", DEFAULTS["policy.quiet_hours_start"],
         "Start of quiet hours (HH:MM, the person's local time): no marketing and no phone calls. Equal start "
         "and end mean no quiet hours.", check=_clock_check)
register("policy.quiet_hours_end", DEFAULTS["policy.quiet_hours_end"],
         "End of quiet hours (HH:MM, the person's local time).", check=_clock_check)
register("policy.complaint_cooloff_days", DEFAULTS["policy.complaint_cooloff_days"],
         "Days without marketing after a person complains (e.g. marks a message as spam).",
         check=_non_negative)
register("policy.default_time_zone", DEFAULTS["policy.default_time_zone"],
         "Time zone (IANA name) for quiet hours when a person's own time zone is unknown.", check=_zone_check)


@dataclass(frozen=True, slots=True)
class PolicySettings:
    """Everything policy reads from configuration. ``suppression_key`` is the workspace secret the suppression
    list's hashes are keyed with (HMAC-SHA256); it is passed in, never a setting."""

    email_marketing_requires_double_opt_in: bool = True
    max_marketing_per_window: int = 3
    pressure_window_days: int = 7
    max_marketing_per_day: int = 1
    quiet_hours_start: str = "21:00"
    quiet_hours_end: str = "08:00"
    complaint_cooloff_days: int = 30
    default_time_zone: str = "UTC"
    suppression_key: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        for name in ("max_marketing_per_window", "max_marketing_per_day", "complaint_cooloff_days"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise TaktError(f"policy setting {name} must be a whole number ≥ 0, got {value!r}",
                                code="invalid_setting")
        if isinstance(self.pressure_window_days, bool) or not isinstance(self.pressure_window_days, int) \
                or self.pressure_window_days < 1:
            raise TaktError(f"policy setting pressure_window_days must be a whole number ≥ 1, got "
                            f"{self.pressure_window_days!r}", code="invalid_setting")
        parse_clock(self.quiet_hours_start)
        parse_clock(self.quiet_hours_end)
        zone(self.default_time_zone)
        if not isinstance(self.suppression_key, bytes):
            raise TaktError("the suppression key must be bytes", code="invalid_setting")

    @staticmethod
    def from_settings(settings: Settings, suppression_key: bytes = b"") -> PolicySettings:
        return PolicySettings(
            **{name.removeprefix("policy."): settings[name] for name in DEFAULTS},
            suppression_key=suppression_key,
        )
