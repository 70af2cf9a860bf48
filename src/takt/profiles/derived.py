"""Events the profile fold derives: ``interest_shifted``.

A derived event's messageId is computed from its cause (profile id, causing event's source and messageId),
so replaying the log derives the same id again and the log's idempotent append stores it once. Derived
events carry no identifiers; the fold ignores them when they come back through the log.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from takt.events.model import Event, parse_time, register_kind
from takt.identity.extract import NO_IDENTITY_KINDS

INTEREST_SHIFTED = register_kind(
    "interest_shifted",
    "Derived by the profile projection: a profile's top interest changed. properties: profile_id, from, to, "
    "from_score, to_score, at, cause {position, source, message_id}.",
)
DERIVED_SOURCE = "takt.profiles"
DERIVED_KINDS = frozenset({INTEREST_SHIFTED})
NO_IDENTITY_KINDS.update(DERIVED_KINDS)


def derived_message_id(kind: str, profile_id: str, cause_source: str, cause_message_id: str) -> str:
    digest = hashlib.sha256("\x1f".join((kind, profile_id, cause_source, cause_message_id)).encode()).hexdigest()
    return f"takt-{kind}-{digest[:32]}"


def interest_shifted_event(profile_id: str, shift: dict[str, Any]) -> Event:
    """The derived event for one detected shift (see :func:`takt.profiles.fold.fold_event`)."""
    cause = shift["cause"]
    at: datetime = parse_time(shift["at"])
    return Event(
        kind=INTEREST_SHIFTED,
        message_id=derived_message_id(INTEREST_SHIFTED, profile_id, cause["source"], cause["message_id"]),
        source=DERIVED_SOURCE,
        timestamp=at,
        received_at=at,
        provenance="observed",
        properties={"profile_id": profile_id, **shift},
        context={"derived": True},
    )
