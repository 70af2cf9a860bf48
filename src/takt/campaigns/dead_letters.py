"""The dead-letter list: messages a channel could not deliver after its retries, for an admin to inspect and
replay.

A dead letter holds the message's identity (campaign, version, step, profile id, channel, intent, message id),
the last error and the number of attempts — never the contact point nor the rendered content, which identify
the person. A replay re-renders the message from its identity (:data:`Resend`, supplied by whoever renders
messages: the orchestrator), so it goes to the person's *current* contact point, through ``decide`` again (an
unsubscribe since the failure stops it), and finds nothing once the person is erased.

One dead letter per message id: a message that fails again after a replay updates its entry.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from takt.campaigns.model import DeliveryResult, OutboundMessage
from takt.errors import TaktError


@dataclass(frozen=True, slots=True)
class DeadLetter:
    message_id: str
    campaign: str
    campaign_version: int
    step: str
    profile_id: str
    intent: str
    channel: str
    error: str
    attempts: int
    failed_at: datetime
    replayed_at: datetime | None = None
    replay_status: str | None = None
    """``sent``, ``failed``, ``deferred`` or ``skipped`` (the re-render found nothing to send) after a replay."""

    @property
    def id(self) -> str:
        return self.message_id

    @classmethod
    def of(cls, message: OutboundMessage, error: str, attempts: int, at: datetime) -> DeadLetter:
        return cls(message.message_id, message.campaign, message.campaign_version, message.step,
                   message.profile_id, message.intent, message.channel, error, attempts, at)

    def to_json(self) -> dict[str, object]:
        def iso(t: datetime | None) -> str | None:
            return None if t is None else t.astimezone(UTC).isoformat().replace("+00:00", "Z")

        return {"id": self.id, "message_id": self.message_id, "campaign": self.campaign,
                "campaign_version": self.campaign_version, "step": self.step, "profile_id": self.profile_id,
                "intent": self.intent, "channel": self.channel, "error": self.error, "attempts": self.attempts,
                "failed_at": iso(self.failed_at), "replayed_at": iso(self.replayed_at),
                "replay_status": self.replay_status}


class DeadLetters(ABC):
    """Where dead letters are kept (the workspace's storage: :mod:`takt.campaigns.dead_letter_store`)."""

    @abstractmethod
    def add(self, letter: DeadLetter) -> None:
        """Store ``letter`` (replacing an entry of the same message id: a new failure after a replay)."""

    @abstractmethod
    def get(self, letter_id: str) -> DeadLetter | None: ...

    @abstractmethod
    def page(self, limit: int = 100, after: str | None = None, channel: str | None = None,
             pending_only: bool = False) -> list[DeadLetter]:
        """Entries in id order (``after``: the last id of the previous page)."""

    @abstractmethod
    def count(self, pending_only: bool = False) -> int: ...

    @abstractmethod
    def mark_replayed(self, letter_id: str, at: datetime, status: str) -> None: ...


Resend = Callable[[DeadLetter], DeliveryResult | None]
"""Re-render a dead letter's message from its identity and send it; ``None`` when there is nothing to send
(the person is gone, or ``decide`` now says no)."""

ResendFactory = Callable[[Any, Any], Resend]
"""``(storage, settings) → Resend``: how the campaign engine re-renders and sends (the orchestrator appends
one to :data:`RESEND_FACTORIES`; code, not per-workspace state). Without one, replays are refused (409)."""
RESEND_FACTORIES: list[ResendFactory] = []


def resend_for(storage: Any, settings: Any) -> Resend:
    """The resend function of the campaign engine; 409 ``replay_unavailable`` when none is installed."""
    if not RESEND_FACTORIES:
        raise TaktError("replaying needs the campaign orchestrator to re-render the message, and none is installed",
                        code="replay_unavailable", status=409)
    return RESEND_FACTORIES[-1](storage, settings)


def replay(store: DeadLetters, letter_id: str, resend: Resend, now: datetime) -> DeadLetter:
    """Replay one dead letter: 404 when unknown, 409 when already replayed and sent. Answers the entry after."""
    letter = store.get(letter_id)
    if letter is None:
        raise TaktError(f"no dead letter {letter_id!r}", code="not_found", status=404)
    if letter.replay_status == "sent":
        raise TaktError(f"dead letter {letter_id!r} was already replayed and sent", code="already_replayed",
                        status=409)
    result = resend(letter)
    store.mark_replayed(letter_id, now, "skipped" if result is None else result.status)
    after = store.get(letter_id)  # a channel that failed again has updated the error and attempts
    assert after is not None
    return after
