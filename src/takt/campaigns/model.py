"""The campaign model: what a marketer writes (a versioned document) as typed, frozen values.

This module is the contract between the parts of ``campaigns/``: the document parser and validator
(:mod:`takt.campaigns.document`) produces a :class:`Campaign`; the orchestrator (:mod:`takt.campaigns.orchestrator`)
enrols people and walks them through its :attr:`Campaign.steps`; delivery (:mod:`takt.campaigns.delivery`) sends
an :class:`OutboundMessage` and answers a :class:`DeliveryResult`.

A document::

    {"name": "ny-city-break", "intent": "marketing",
     "audience": "interest(\\"destination:new-york\\") > 1",        # or {"segment": "name"}
     "trigger": {"on": "now"},
     "channels": ["email", "push", "sms"],                          # ranked; per person the policy picks one
     "message": {"email": {"subject": "…", "text": "…", "html": "…"}, "push": {"title": "…", "body": "…"}},
     "holdout": 0.1, "goal": {"event": "Order Completed", "within": "14d"}, "priority": 50,
     "steps": [{"send": {}}, {"wait": "3d"}, {"branch": {"if": "…", "then": [...], "else": [...]}}]}

Without ``steps`` a campaign is one send of ``message``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

TriggerKind = Literal["now", "schedule", "segment_entered", "event"]
TRIGGERS: tuple[TriggerKind, ...] = ("now", "schedule", "segment_entered", "event")

MESSAGE_FIELDS: Mapping[str, tuple[str, ...]] = {
    "email": ("subject", "text", "html"),
    "push": ("title", "body"),
    "sms": ("text",),
    "phone": ("script",),
    "post": ("text",),
    "social_dm": ("text",),
    "in_app": ("title", "body"),
}
"""The template fields each channel's message has (``email`` needs ``subject`` and ``text``; ``html`` is optional)."""


@dataclass(frozen=True, slots=True)
class Audience:
    """Who a campaign is for: a segment expression (``expression``) or a saved segment (``segment``)."""

    expression: str | None = None
    segment: str | None = None


@dataclass(frozen=True, slots=True)
class Trigger:
    """When people are enrolled. ``now``: the audience at launch; ``schedule``: the audience at each ``cron``
    time in ``timezone``; ``segment_entered``: whoever enters ``segment``; ``event``: whoever has an event
    named ``event`` (optionally matching the segment expression ``where``)."""

    on: TriggerKind
    cron: str | None = None
    timezone: str | None = None
    segment: str | None = None
    event: str | None = None
    where: str | None = None


@dataclass(frozen=True, slots=True)
class Template:
    """One channel's message: template source per field (``subject``, ``text``, ``html``, ``title``, ``body`` …).
    Jinja2 in a sandbox, with the person's ``traits``, ``interests`` and ``offer``; ``defaults`` supply values a
    person may lack (``{"traits.firstName": "there"}``)."""

    fields: Mapping[str, str]
    defaults: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Send:
    """Send a message: ``message`` overrides the campaign's ``message`` for this step (channel → template)."""

    message: Mapping[str, Template] | None = None


@dataclass(frozen=True, slots=True)
class Wait:
    duration: timedelta


@dataclass(frozen=True, slots=True)
class WaitUntil:
    """Wait until the person matches ``condition`` (a segment expression), at most ``timeout``."""

    condition: str
    timeout: timedelta


@dataclass(frozen=True, slots=True)
class Branch:
    condition: str
    then: tuple[Step, ...]
    otherwise: tuple[Step, ...] = ()


@dataclass(frozen=True, slots=True)
class ExitIf:
    condition: str


Step = Send | Wait | WaitUntil | Branch | ExitIf


@dataclass(frozen=True, slots=True)
class Goal:
    """A conversion: an event named ``event`` within ``within`` of the person's first send."""

    event: str
    within: timedelta


@dataclass(frozen=True, slots=True)
class Campaign:
    name: str
    intent: str
    """A message purpose (``takt.policy.vocab.MESSAGE_PURPOSES``)."""
    audience: Audience
    trigger: Trigger
    channels: tuple[str, ...]
    """The channels the marketer is willing to use, best first; the policy picks one per person."""
    message: Mapping[str, Template]
    holdout: float = 0.0
    goal: Goal | None = None
    priority: int = 50
    steps: tuple[Step, ...] = (Send(),)
    version: int = 1
    document: Mapping[str, object] = field(default_factory=dict)
    """The document as written (what the API and CLI show back)."""


def step_paths(steps: tuple[Step, ...], prefix: str = "") -> dict[str, Step]:
    """Every step by its path: ``"0"``, ``"1"``, ``"2.then.0"``, ``"2.else.1"`` …; a path names a step within
    one version of a campaign."""
    out: dict[str, Step] = {}
    for i, step in enumerate(steps):
        path = f"{prefix}{i}"
        out[path] = step
        if isinstance(step, Branch):
            out.update(step_paths(step.then, f"{path}.then."))
            out.update(step_paths(step.otherwise, f"{path}.else."))
    return out


def message_id(campaign: str, version: int, step: str, profile_id: str) -> str:
    """A message's identity: one per (campaign version, step, person). Whatever happens (a restart, two
    workers, a trigger firing twice), at most one message with this id is ever sent."""
    digest = hashlib.sha256(f"{campaign}\x00{version}\x00{step}\x00{profile_id}".encode()).hexdigest()
    return f"msg_{digest[:32]}"


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """A rendered message ready to leave, on one channel, to one contact point."""

    message_id: str
    """Also the idempotency key delivery passes on (webhook header, SMTP ``Message-ID``)."""
    campaign: str
    campaign_version: int
    step: str
    profile_id: str
    intent: str
    channel: str
    contact_point: str | None
    """The address to send to, in clear (only in memory while sending; never logged)."""
    content: Mapping[str, str]
    """The rendered template fields (``subject``/``text``/``html``, ``title``/``body`` …)."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Extra headers (for email: ``List-Unsubscribe`` and ``List-Unsubscribe-Post`` on marketing)."""


DeliveryStatus = Literal["sent", "failed", "deferred"]


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What a channel answered. ``sent``: accepted by the provider; ``failed``: refused (``permanent`` says
    whether a retry can help); ``deferred``: not sent now (rate limit, provider unavailable), try later."""

    status: DeliveryStatus
    provider_id: str | None = None
    error: str | None = None
    permanent: bool = False
