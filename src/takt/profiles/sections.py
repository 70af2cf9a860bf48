"""Extra sections of a profile's API JSON, contributed by later layers without touching the profile code.

Segments add ``segments``, models add ``scores`` and ``clv``, policy adds ``consent``: each registers a function
``section(storage, profile, now) -> JSON value or None`` under its key. ``None`` leaves the key out. The core
profile JSON (:func:`takt.profiles.view.profile_json`) stays a pure function of the projection; sections read
their own stores.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from takt.storage.base import Storage

JSON = dict[str, Any]
Section = Callable[[Storage, JSON, datetime], Any]

_SECTIONS: dict[str, Section] = {}


def register_section(key: str, fn: Section) -> None:
    """Add ``key`` to every profile's JSON, computed by ``fn``. Registering a key twice replaces it; a key the
    core profile already has is refused (a section cannot hide core data)."""
    if key in _CORE_KEYS:
        raise ValueError(f"profile section {key!r} would replace a core profile field")
    _SECTIONS[key] = fn


def unregister_section(key: str) -> None:
    _SECTIONS.pop(key, None)


def sections() -> dict[str, Section]:
    return dict(_SECTIONS)


def add_sections(storage: Storage, profile: JSON, now: datetime) -> JSON:
    """``profile`` with every registered section added (in key order)."""
    for key, fn in sorted(_SECTIONS.items()):
        value = fn(storage, profile, now)
        if value is not None:
            profile[key] = value
    return profile


_CORE_KEYS = frozenset({
    "id", "identifiers", "merges", "conflicts", "splits", "traits", "contact_points", "stats", "touchpoints",
    "interests", "top_interest", "interest_shifts", "as_of", "links",
})
