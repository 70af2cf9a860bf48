"""Analytics settings: the smallest group a report shows, the purposes of event names, the default goal."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from takt.settings import register

PURPOSES = ("browse", "search", "buy", "return", "service", "consent", "message response", "other")
"""What a customer does through a touchpoint. ``other``: an interaction no mapping names."""

KIND_PURPOSES: dict[str, str] = {"page": "browse", "screen": "browse"}
"""Purposes of interaction kinds without an event name (page and screen views)."""

DEFAULT_PURPOSES: dict[str, str] = {
    "Product Viewed": "browse", "Product List Viewed": "browse", "Product Clicked": "browse",
    "Promotion Viewed": "browse", "Promotion Clicked": "browse", "Products Searched": "search",
    "Product Added": "buy", "Product Removed": "buy", "Cart Viewed": "buy", "Checkout Started": "buy",
    "Checkout Step Completed": "buy", "Payment Info Entered": "buy", "Order Completed": "buy",
    "Order Refunded": "return", "Order Cancelled": "return", "Return Requested": "return",
    "Case Opened": "service", "Case Closed": "service", "Ticket Created": "service", "Chat Started": "service",
    "Call Completed": "service", "Consent Updated": "consent", "Consent Given": "consent",
    "Consent Withdrawn": "consent", "Unsubscribed": "consent", "Email Opened": "message response",
    "Email Link Clicked": "message response", "Email Clicked": "message response", "Push Opened": "message response",
    "SMS Clicked": "message response", "Message Replied": "message response",
}
"""Purposes of track event names; ``analytics.purposes`` adds to and overrides these."""

INTERACTION_KINDS = ("track", "page", "screen")
"""The events that are a customer's interactions (identify calls, imported records and takt's own derived
events are not)."""


def _check_purposes(v: Any) -> None:
    for name, purpose in v.items():
        if not isinstance(purpose, str) or not purpose.strip():
            raise ValueError(f"the purpose of event {name!r} must be a name, got {purpose!r}")


def _check_slas(v: Any) -> None:
    for source, minutes in v.items():
        if isinstance(minutes, bool) or not isinstance(minutes, int | float) or minutes <= 0:
            raise ValueError(f"the SLA of source {source!r} must be a positive number of minutes, got {minutes!r}")


def _check_min_group(v: Any) -> None:
    if v < 1:
        raise ValueError(f"must be at least 1, got {v!r}")


def _positive(v: Any) -> None:
    if v <= 0:
        raise ValueError(f"must be positive, got {v!r}")


register("analytics.min_group_size", 50,
         "Smallest number of people a cell of an analytics report may describe; smaller groups are suppressed "
         "(and the report says how many), so analytics cannot single out a person.", check=_check_min_group)
register("analytics.purposes", {},
         "Purpose of a track event name for touchpoint analytics (e.g. {\"Quote Requested\" = \"buy\"}); adds to "
         "and overrides the documented defaults (docs/analytics.md).", check=_check_purposes)
register("analytics.goal", "Order Completed",
         "The track event that counts as a conversion for paths and attribution when none is asked.")
register("analytics.source_sla_minutes", {},
         "Freshness SLA per source: the longest silence (minutes since its last event arrived) before the source is "
         "a breach (more than half of it: a warning); `default` for the sources not named "
         "(e.g. {website = 60, crm = 1440}).", check=_check_slas)
register("analytics.lookback_days", 30,
         "Days before a goal event whose touches lead to it (paths, attribution) when none is asked.",
         check=_positive)


@dataclass(frozen=True)
class AnalyticsConfig:
    min_group_size: int = 50
    purposes: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_PURPOSES))
    goal: str = "Order Completed"
    lookback_days: float = 30
    source_sla_minutes: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Any) -> AnalyticsConfig:
        return cls(min_group_size=int(settings["analytics.min_group_size"]),
                   purposes={**DEFAULT_PURPOSES, **dict(settings["analytics.purposes"])},
                   goal=str(settings["analytics.goal"]), lookback_days=float(settings["analytics.lookback_days"]),
                   source_sla_minutes={str(k): float(v) for k, v in settings["analytics.source_sla_minutes"].items()})
