"""Message lifecycle: ``message`` events and the per-message records contact pressure counts.

A ``message`` event's ``properties``::

    {"message_id": "msg_123",           # the message (one message has several lifecycle events)
     "status": "sent" | "delivered" | "opened" | "clicked" | "bounced" | "complained",
     "channel": "email",                # see takt.policy.vocab.CHANNELS
     "contact_point": "ada@example.com",# optional (in_app has none)
     "campaign": "winter-sale",         # optional
     "intent": "marketing" | "transactional" | "service"}

Every lifecycle event implies the message was sent: a message counts from its earliest event, so a lost
``sent`` event does not hide a message from the budget.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from takt.errors import invalid
from takt.events.model import Event, StoredEvent, register_kind
from takt.policy.vocab import (
    CHANNEL_KIND,
    CHANNELS,
    ENGAGED_STATUSES,
    MESSAGE_PURPOSES,
    MESSAGE_STATUSES,
    normalize_contact_value,
)

MESSAGE = register_kind(
    "message",
    "A message lifecycle step: properties.message_id, status (sent/delivered/opened/clicked/bounced/"
    "complained), channel, contact_point, campaign, intent (marketing/transactional/service).",
)

MESSAGE_FIELDS = ("message_id", "status", "channel", "contact_point", "campaign", "intent")


def validate_message(properties: Any) -> dict[str, Any]:
    """Check a message lifecycle payload; return it normalized or raise :class:`~takt.errors.TaktError`
    (code ``invalid_message``) listing every problem."""
    if not isinstance(properties, Mapping):
        raise invalid("a message event's properties must be an object", code="invalid_message")
    errors: list[dict[str, Any]] = []
    for key in sorted(set(properties) - set(MESSAGE_FIELDS), key=str):
        errors.append({"field": str(key), "reason": f"unknown message field {key!r} (expected "
                                                    f"{', '.join(MESSAGE_FIELDS)})"})
    for name, choices in (("status", MESSAGE_STATUSES), ("channel", CHANNELS), ("intent", MESSAGE_PURPOSES)):
        value = properties.get(name)
        if value not in choices:
            what = "missing" if value is None else f"unknown {name} {value!r}"
            errors.append({"field": name, "reason": f"{what} (expected one of {', '.join(choices)})"})
    for name, required in (("message_id", True), ("contact_point", False), ("campaign", False)):
        value = properties.get(name)
        if value is None and not required:
            continue
        if not isinstance(value, str) or not value.strip():
            errors.append({"field": name, "reason": f"{name} must be a non-empty string"})
    if errors:
        raise invalid("invalid message event", code="invalid_message", errors=errors)
    out = {k: properties[k] for k in MESSAGE_FIELDS if properties.get(k) is not None}
    kind = CHANNEL_KIND[out["channel"]]
    if "contact_point" in out and kind is not None:
        out["contact_point"] = normalize_contact_value(kind, out["contact_point"])
    return out


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """One message as its lifecycle events tell it. ``sent_at`` is the time of its earliest event."""

    message_id: str
    channel: str
    intent: str
    sent_at: datetime
    contact_point: str | None = None
    campaign: str | None = None
    statuses: frozenset[str] = frozenset()
    complained_at: datetime | None = None

    @property
    def engaged(self) -> bool:
        return any(s in self.statuses for s in ENGAGED_STATUSES)


def fold_messages(events: Iterable[Event | StoredEvent]) -> tuple[MessageRecord, ...]:
    """One record per message id from ``message`` events (other kinds are skipped), in order of first
    appearance."""
    records: dict[str, MessageRecord] = {}
    for item in events:
        e = item.event if isinstance(item, StoredEvent) else item
        if e.kind != MESSAGE:
            continue
        p = validate_message(e.properties)
        mid = p["message_id"]
        old = records.get(mid)
        complained = e.timestamp if p["status"] == "complained" else None
        if old is None:
            records[mid] = MessageRecord(mid, p["channel"], p["intent"], e.timestamp, p.get("contact_point"),
                                         p.get("campaign"), frozenset([p["status"]]), complained)
            continue
        complained_at = old.complained_at
        if complained is not None and (complained_at is None or complained < complained_at):
            complained_at = complained
        records[mid] = MessageRecord(
            mid, old.channel, old.intent, min(old.sent_at, e.timestamp), old.contact_point, old.campaign,
            old.statuses | {p["status"]}, complained_at,
        )
    return tuple(records.values())


def complaint_times(messages: Iterable[MessageRecord]) -> tuple[datetime, ...]:
    """When the person complained about a message, oldest first."""
    return tuple(sorted(m.complained_at for m in messages if m.complained_at is not None))


def engagement_counts(messages: Iterable[MessageRecord]) -> dict[str, int]:
    """Messages the person opened or clicked, per channel: one input to channel choice."""
    counts: dict[str, int] = {}
    for m in messages:
        if m.engaged:
            counts[m.channel] = counts.get(m.channel, 0) + 1
    return counts
