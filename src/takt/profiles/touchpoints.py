"""Which touchpoint (channel) an event came through, and its hour of the week.

The first that applies: ``context.channel`` when it names a touchpoint (Segment's ``browser`` → web,
``mobile`` → app; ``server`` says nothing), the campaign's ``medium`` then ``source`` (UTM:
``email``, ``sms``, ``social``, ``push``, …), the library (``analytics.js`` and other browser libraries →
web, ``analytics-ios``/``analytics-android``/React Native/Flutter → app), the ``profiles.source_channels``
setting for the event's source, the source name itself when it is a touchpoint, else ``other``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from takt.events.model import Event
from takt.identity.resolver import aware
from takt.profiles.config import TOUCHPOINTS, ProfileConfig

HOURS_PER_WEEK = 168

_ALIASES = {
    "browser": "web", "website": "web", "web": "web", "mobile": "app", "ios": "app", "android": "app",
    "app": "app", "email": "email", "e-mail": "email", "newsletter": "email", "store": "store", "pos": "store",
    "shop": "store", "retail": "store", "call_center": "call_center", "call-center": "call_center",
    "callcenter": "call_center", "phone": "call_center", "chat": "chat", "whatsapp": "chat", "social": "social",
    "facebook": "social", "instagram": "social", "tiktok": "social", "twitter": "social", "x": "social",
    "linkedin": "social", "sms": "sms", "text": "sms", "push": "push", "mail": "mail", "letter": "mail",
    "paid_social": "social", "social-paid": "social", "cpc": "web", "display": "web", "organic": "web",
}


def touchpoint_name(value: object) -> str | None:
    """The touchpoint a channel name means (``browser`` → web, ``phone`` → call_center …), if any."""
    if not isinstance(value, str):
        return None
    v = value.strip().lower()
    if v in TOUCHPOINTS:
        return v
    return _ALIASES.get(v)


def _library(name: object) -> str | None:
    if not isinstance(name, str):
        return None
    n = name.lower()
    if any(k in n for k in ("ios", "android", "react-native", "flutter", "swift", "kotlin")):
        return "app"
    if any(k in n for k in ("analytics.js", "analytics-next", "browser", "javascript", "rudder-js")):
        return "web"
    return None


def channel_of(event: Event, config: ProfileConfig) -> str:
    ctx = event.context or {}
    ch = touchpoint_name(ctx.get("channel"))
    if ch is not None:
        return ch
    campaign = ctx.get("campaign")
    if isinstance(campaign, Mapping):
        for field in ("medium", "source"):
            ch = touchpoint_name(campaign.get(field))
            if ch is not None:
                return ch
    library = ctx.get("library")
    if isinstance(library, Mapping):
        ch = _library(library.get("name"))
        if ch is not None:
            return ch
    mapped = config.source_channels.get(event.source)
    if mapped:
        return mapped
    return touchpoint_name(event.source) or "other"


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def hour_of_week(event: Event) -> int:
    """0 = Monday 00:00–00:59 … 167 = Sunday 23:00, in ``context.timezone`` when valid, else UTC."""
    tz_name = event.context.get("timezone") if event.context else None
    zone = _zone(tz_name) if isinstance(tz_name, str) and tz_name else None
    t: datetime = event.timestamp
    if zone is not None or t.tzinfo is not UTC:  # times from the log are UTC already
        t = aware(t).astimezone(zone or UTC)
    return t.weekday() * 24 + t.hour
