"""The state of every campaign run, folded from the log (:mod:`takt.campaigns.events` and ``message`` events).

A pure fold: :meth:`Runs.apply` takes the log's events in order; replaying the log from position 0 gives the
same state, which is how the orchestrator starts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from takt.campaigns.events import CAMPAIGN, CAMPAIGN_ENROLLED, CAMPAIGN_STEP, SOURCE
from takt.events.model import StoredEvent, parse_time
from takt.policy.messages import MESSAGE

OUTCOMES = ("attempted", "sent", "failed")


@dataclass(slots=True)
class Run:
    """One campaign: its launched version, its status and where its lifecycle events are in the log."""

    name: str
    version: int
    status: str  # running | paused | stopped
    launched_at: datetime
    launched_position: int
    serial: int = 0
    """How many lifecycle events it had."""
    audience_done: bool = False
    """A ``now`` campaign enrolled its audience."""


@dataclass(slots=True)
class Enrolment:
    campaign: str
    version: int
    profile_id: str
    holdout: bool
    at: datetime
    next: str | None = "0"
    """The step to run next (``None``: done)."""
    wake: datetime | None = None
    until: datetime | None = None
    serial: int = 0
    """How many step events this person had in this campaign."""
    outcomes: dict[str, str] = field(default_factory=dict)
    """Step path → its last outcome."""


@dataclass(slots=True)
class Message:
    message_id: str
    campaign: str
    statuses: set[str] = field(default_factory=set)
    profile_id: str | None = None
    step: str | None = None
    channel: str | None = None
    at: datetime | None = None
    reasons: tuple[str, ...] = ()
    skipped: bool = False
    why: tuple[str, ...] = ()
    """Why it was allowed (the decision's reasons, for people), or why not."""


class Runs:
    """Every campaign run, enrolment and campaign message the log holds, up to :attr:`position`."""

    def __init__(self) -> None:
        self.position = 0
        self.runs: dict[str, Run] = {}
        self.enrolments: dict[tuple[str, str], Enrolment] = {}
        """(campaign, profile id) → the person's enrolment in the campaign's launched version."""
        self.messages: dict[str, Message] = {}

    def apply_all(self, events: Iterable[StoredEvent]) -> None:
        for stored in events:
            self.apply(stored)

    def apply(self, stored: StoredEvent) -> None:
        self.position = max(self.position, stored.position)
        ev = stored.event
        if ev.source != SOURCE:
            return
        p: dict[str, Any] = ev.properties
        if ev.kind == CAMPAIGN:
            self._lifecycle(p, stored.position, ev.timestamp)
        elif ev.kind == CAMPAIGN_ENROLLED:
            key = (p["campaign"], p["profile_id"])
            if key not in self.enrolments or self.enrolments[key].version != p["version"]:
                self.enrolments[key] = Enrolment(p["campaign"], int(p["version"]), p["profile_id"],
                                                 bool(p.get("holdout")), parse_time(p["at"]),
                                                 None if p.get("holdout") else "0")
        elif ev.kind == CAMPAIGN_STEP:
            self._step(p)
        elif ev.kind == MESSAGE:
            m = self.messages.setdefault(p["message_id"], Message(p["message_id"], p.get("campaign", "")))
            m.statuses.add(p["status"])
            m.channel = m.channel or p.get("channel")
            m.at = m.at or ev.timestamp

    def _lifecycle(self, p: dict[str, Any], position: int, at: datetime) -> None:
        name, action = p["campaign"], p["action"]
        run = self.runs.get(name)
        if action == "launched":
            serial = run.serial if run else 0
            self.runs[name] = Run(name, int(p["version"]), "running", at, position, serial + 1)
            return
        if run is None:
            return
        run.serial += 1
        if action == "audience_enrolled":
            run.audience_done = True
        run.status = {"paused": "paused", "resumed": "running", "stopped": "stopped"}.get(action, run.status)

    def _step(self, p: dict[str, Any]) -> None:
        e = self.enrolments.get((p["campaign"], p["profile_id"]))
        if e is None or e.version != p["version"]:
            return
        e.serial += 1
        e.next = p.get("next")
        e.wake = parse_time(p["wake"]) if p.get("wake") else None
        e.until = parse_time(p["until"]) if p.get("until") else None
        e.outcomes[p["step"]] = p["outcome"]
        mid = p.get("message_id")
        if mid:
            m = self.messages.setdefault(mid, Message(mid, p["campaign"]))
            m.profile_id, m.step = p["profile_id"], p["step"]
            m.channel = p.get("channel") or m.channel
            m.at = m.at or parse_time(p["at"])
            if p["outcome"] in ("skipped", "unknown", "sent", "failed"):
                m.reasons = tuple(p.get("reasons") or ())
                m.skipped = p["outcome"] == "skipped"
                m.why = tuple(p.get("why") or ())

    # ---- reading ----
    def status_of(self, message_id: str) -> str | None:
        """``sent``, ``failed``, ``unknown`` (attempted, no outcome recorded), ``skipped`` or ``None`` (never
        attempted)."""
        m = self.messages.get(message_id)
        if m is None:
            return None
        if "sent" in m.statuses:
            return "sent"
        if m.skipped:
            return "skipped"  # decided again at the send: no longer allowed (recorded as failed: it never left)
        if "failed" in m.statuses:
            return "failed"
        if "attempted" in m.statuses:
            return "unknown"
        return "skipped" if m.skipped else None

    def of_campaign(self, campaign: str) -> list[Enrolment]:
        run = self.runs.get(campaign)
        if run is None:
            return []
        return [e for (c, _), e in self.enrolments.items() if c == campaign and e.version == run.version]

    def of_person(self, profile_id: str) -> list[Message]:
        return [m for m in self.messages.values() if m.profile_id == profile_id]
