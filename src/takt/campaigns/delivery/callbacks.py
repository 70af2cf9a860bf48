"""Delivery outcomes a provider reports back (``POST /v1/deliveries/callbacks/{channel}``), read into what
becomes a ``message`` event.

A callback body (signed like a webhook, with the channel's secret: :mod:`takt.campaigns.delivery.signing`)::

    {"message_id": "msg_…",            # the id takt sent (Idempotency-Key, or the email's Message-ID)
     "profile_id": "p_…",              # as takt sent it (webhook body; email header X-Takt-Profile)
     "status": "delivered" | "bounced" | "complained" | "clicked" | "opened",
     "bounce": "hard" | "soft",        # with "bounced" (default hard)
     "contact_point": "…",             # optional: the address the outcome is about
     "campaign": "…", "intent": "…",   # optional when takt already recorded the message
     "at": "2026-12-08T01:00:00Z"}     # optional: when it happened (default: now)

A soft bounce is the provider's own retry and is not recorded (nothing is stored). A hard bounce or a complaint
about a contact point puts it on the suppression list (the list derives it from the ``message`` event).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from takt.errors import invalid
from takt.policy.vocab import MESSAGE_PURPOSES

CALLBACK_STATUSES = ("delivered", "bounced", "complained", "clicked", "opened")
CALLBACK_FIELDS = ("message_id", "profile_id", "status", "bounce", "contact_point", "campaign", "intent", "at")


@dataclass(frozen=True, slots=True)
class Callback:
    message_id: str
    profile_id: str
    status: str
    bounce: str | None = None
    contact_point: str | None = None
    campaign: str | None = None
    intent: str | None = None
    at: str | None = None

    @property
    def recorded(self) -> bool:
        """Whether the outcome becomes an event (a soft bounce does not)."""
        return not (self.status == "bounced" and self.bounce == "soft")


def parse_callback(body: Any) -> Callback:
    """A callback body checked field by field; :class:`~takt.errors.TaktError` 400 ``invalid_callback`` naming
    every problem."""
    if not isinstance(body, Mapping):
        raise invalid("a callback body must be a JSON object", code="invalid_callback")
    errors: list[dict[str, str]] = []
    for key in sorted(set(body) - set(CALLBACK_FIELDS), key=str):
        errors.append({"field": str(key), "reason": f"unknown field (expected {', '.join(CALLBACK_FIELDS)})"})
    for name in ("message_id", "profile_id"):
        v = body.get(name)
        if not isinstance(v, str) or not v.strip() or len(v) > 200:
            errors.append({"field": name, "reason": "a non-empty string of at most 200 characters is required"})
    status = body.get("status")
    if status not in CALLBACK_STATUSES:
        errors.append({"field": "status", "reason": f"one of {', '.join(CALLBACK_STATUSES)}"})
    bounce = body.get("bounce")
    if bounce is not None and (status != "bounced" or bounce not in ("hard", "soft")):
        errors.append({"field": "bounce", "reason": "hard or soft, only with status bounced"})
    intent = body.get("intent")
    if intent is not None and intent not in MESSAGE_PURPOSES:
        errors.append({"field": "intent", "reason": f"one of {', '.join(MESSAGE_PURPOSES)}"})
    for name in ("contact_point", "campaign", "at"):
        v = body.get(name)
        if v is not None and (not isinstance(v, str) or not v.strip()):
            errors.append({"field": name, "reason": "a non-empty string"})
    if errors:
        raise invalid("invalid delivery callback", code="invalid_callback", errors=errors)
    return Callback(str(body["message_id"]).strip(), str(body["profile_id"]).strip(), str(status),
                    ("hard" if bounce is None else str(bounce)) if status == "bounced" else None,
                    body.get("contact_point"), body.get("campaign"), intent, body.get("at"))
