"""Builders for policy tests: consent and message events, contact points, people."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from takt.events.model import Event
from takt.policy import ContactPoint, PolicySettings

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)  # a Monday, 10:00 UTC: outside quiet hours
KEY = b"workspace-secret"
SETTINGS = PolicySettings(suppression_key=KEY)

_ids = itertools.count()

ACTOR_PROVENANCE = {"customer": "customer_provided", "import": "crm_import", "admin": "customer_provided",
                    "third_party": "third_party"}


def consent(status: str, channel: str | None = "email", contact_point: str | None = None, *,
            purpose: str = "marketing", actor: str = "customer", method: str | None = "double_opt_in",
            at: datetime = T0, provenance: str | None = None, **extra: Any) -> Event:
    props: dict[str, Any] = {"purpose": purpose, "status": status, "actor": actor, **extra}
    if channel is not None:
        props["channel"] = channel
    if contact_point is not None:
        props["contact_point"] = contact_point
    if method is not None:
        props["evidence"] = {"method": method, "source": "test"}
    return Event(kind="consent", message_id=f"c-{next(_ids)}", source="test", timestamp=at, received_at=at,
                 provenance=provenance or ACTOR_PROVENANCE[actor], user_id="u1", properties=props)


def message(status: str, channel: str = "email", *, message_id: str | None = None, intent: str = "marketing",
            at: datetime = T0, contact_point: str | None = "ada@example.com", campaign: str = "c1") -> Event:
    props: dict[str, Any] = {"message_id": message_id or f"msg-{next(_ids)}", "status": status,
                             "channel": channel, "intent": intent, "campaign": campaign}
    if contact_point is not None:
        props["contact_point"] = contact_point
    return Event(kind="message", message_id=f"e-{next(_ids)}", source="takt", timestamp=at, received_at=at,
                 provenance="observed", user_id="u1", properties=props)


def email(value: str = "ada@example.com", provenance: str = "customer_provided", **kw: Any) -> ContactPoint:
    return ContactPoint("email", value, provenance, **kw)


def phone(value: str = "+4930123456", provenance: str = "customer_provided", **kw: Any) -> ContactPoint:
    return ContactPoint("phone", value, provenance, **kw)
