"""A small world for orchestrator tests: people with contact points and consent, appended straight to a DuckDB
log, a profile runner over it, an in-memory recording Channel and an orchestrator on a FixedClock."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from takt.campaigns.delivery.base import Channel, Deliveries
from takt.campaigns.model import Audience, Campaign, DeliveryResult, OutboundMessage, Step, Template, Trigger
from takt.campaigns.orchestrator import Orchestrator
from takt.clock import FixedClock
from takt.events.model import Event
from takt.policy.config import PolicySettings
from takt.policy.consent import CONSENT
from takt.policy.suppression_store import suppression_key
from takt.profiles.config import ProfileConfig
from takt.projections.runner import ProfileRunner
from takt.settings import load
from takt.storage.duckdb import DuckDBStorage

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)  # a Monday, 10:00 UTC: outside quiet hours
EMAIL = {"email": {"subject": "Hello {{ traits.firstName }}", "text": "Hi {{ traits.firstName }}!"}}
ALL = {**EMAIL, "sms": {"text": "Hi {{ traits.firstName }}"}, "phone": {"script": "Call"},
       "push": {"title": "Hi", "body": "{{ traits.firstName }}"}, "in_app": {"title": "Hi", "body": "Hi"}}


class Recorder(Channel):
    """A real Channel that records what it was given (thread-safe)."""

    def __init__(self, name: str, before_send: Any = None) -> None:
        self.name = name
        self.sent: list[OutboundMessage] = []
        self.lock = threading.Lock()
        self.before_send = before_send

    def send(self, message: OutboundMessage) -> DeliveryResult:
        if self.before_send is not None:
            self.before_send(message)
        with self.lock:
            self.sent.append(message)
        return DeliveryResult("sent", provider_id=f"rec-{len(self.sent)}")


def person_events(uid: str, *, email: bool = True, phone: bool = False, preferred: str | None = None,
                  consent_on: Iterable[str] = ("email",), first_name: str | None = "Ada", at: datetime = T0,
                  extra_traits: Mapping[str, Any] | None = None) -> list[Event]:
    traits: dict[str, Any] = dict(extra_traits or {})
    if email:
        traits["email"] = f"{uid}@example.com"
    if phone:
        traits["phone"] = "+4915112345" + str(abs(hash(uid)) % 1000).zfill(3)
    if preferred:
        traits["preferred_channel"] = preferred
    if first_name:
        traits["firstName"] = first_name
    out = [Event(kind="identify", message_id=f"id-{uid}", source="web", timestamp=at, received_at=at,
                 provenance="customer_provided", user_id=uid, traits=traits)]
    for i, ch in enumerate(consent_on):
        cp = traits.get("email") if ch == "email" else traits.get("phone") if ch in ("sms", "phone") else None
        props: dict[str, Any] = {"purpose": "marketing", "channel": ch, "status": "granted", "actor": "customer",
                                 "evidence": {"method": "double_opt_in"}}
        if cp:
            props["contact_point"] = cp
        t = at + timedelta(seconds=1 + i)
        out.append(Event(kind=CONSENT, message_id=f"c-{uid}-{ch}", source="web", timestamp=t, received_at=t,
                         provenance="customer_provided", user_id=uid, properties=props))
    return out


def campaign(name: str, *, channels: Sequence[str] = ("email",), message: Mapping[str, Mapping[str, str]] = EMAIL,
             audience: str | None = None, trigger: Trigger = Trigger("now"), priority: int = 50,
             steps: tuple[Step, ...] | None = None, holdout: float = 0.0, version: int = 1) -> Campaign:
    msg = {ch: Template(dict(fields), {"traits.firstName": "there"}) for ch, fields in message.items()}
    kw: dict[str, Any] = {"steps": steps} if steps is not None else {}
    return Campaign(name, "marketing", Audience(expression=audience), trigger, tuple(channels), msg,
                    holdout=holdout, priority=priority, version=version, **kw)


class World:
    def __init__(self, path: Path, now: datetime = T0 + timedelta(days=1), config: ProfileConfig | None = None,
                 storage: Any = None) -> None:
        self.storage = storage or DuckDBStorage(path / "w.duckdb")
        self.settings = load(None, env={})
        self.clock = FixedClock(now)
        self.runner = ProfileRunner(self.storage, config or ProfileConfig.from_settings(self.settings), self.clock)
        self.policy = PolicySettings.from_settings(self.settings, suppression_key(self.storage))
        self.campaigns: dict[tuple[str, int], Campaign] = {}

    def add(self, events: Sequence[Event]) -> None:
        self.storage.log.append(events)
        self.runner.catch_up()

    def orchestrator(self, channels: Sequence[Channel], **kw: Any) -> Orchestrator:
        return Orchestrator(self.storage, self.runner, Deliveries({c.name: c for c in channels}), self.policy,
                            lambda n, v: self.campaigns.get((n, v)), self.clock, **kw)

    def define(self, c: Campaign) -> Campaign:
        self.campaigns[(c.name, c.version)] = c
        return c

    def close(self) -> None:
        self.storage.close()
