"""The faster ways :mod:`takt.policy.segment_functions` computes contactability give exactly what the direct
ways give: one decision per purpose over every channel (not one per channel), and not reading the events of
profiles without consent changes or messages. Differential, over random people (consent kinds and calls,
messages, preferences, provenances, time zones, merges, suppressions) and the demo workspace."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import takt.policy.segment_functions as sf
from takt.clock import FixedClock
from takt.events.model import Event
from takt.policy.config import PolicySettings
from takt.policy.suppression_store import suppress
from takt.profiles.config import ProfileConfig
from takt.projections.runner import ProfileRunner
from takt.settings import load
from takt.storage.base import Storage

T0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
NOWS = (datetime(2026, 11, 20, 12, 0, tzinfo=UTC), datetime(2026, 11, 20, 23, 30, tzinfo=UTC))  # day; quiet hours
CONFIG = ProfileConfig.from_settings(load(None, env={}))
PROVENANCES = ("customer_provided", "crm_import", "observed", "third_party")
CHANNEL_CHOICES = ("email", "sms", "push", "phone", "post", "in_app")


def _random_events(rng: random.Random, n: int) -> list[Event]:
    out: list[Event] = []
    for i in range(n):
        k = rng.randrange(10)
        user, anon = f"u{k}", f"a{k}"
        at = T0 + timedelta(hours=i)
        provenance = rng.choice(PROVENANCES)
        source = "vendor" if provenance == "third_party" else "web"
        base: dict[str, Any] = {"message_id": f"m-{i}", "source": source, "timestamp": at, "received_at": at,
                                "provenance": provenance, "user_id": user,
                                "trust": rng.choice(("server", "server", "verified", "public"))}  # claims too
        if rng.random() < 0.3:
            base["context"] = {"timezone": rng.choice(["Europe/Berlin", "America/New_York", "Asia/Tokyo", "Nowhere"])}
        roll = rng.random()
        if roll < 0.25:
            traits: dict[str, Any] = {}
            if rng.random() < 0.7:
                traits["email"] = f"{user}@example.com" if rng.random() < 0.8 else f"{user}.alt@example.com"
            if rng.random() < 0.4:
                traits["phone"] = f"+49151{k:07d}"
            if rng.random() < 0.15:
                traits["preferred_channel"] = rng.choice(CHANNEL_CHOICES)
            if rng.random() < 0.1:
                traits["timezone"] = rng.choice(["Europe/Lisbon", "Pacific/Auckland"])
            out.append(Event(kind="identify", traits=traits, **base))
        elif roll < 0.32:  # an anonymous visitor, later merged into the user
            base.update(user_id=None, anonymous_id=anon)
            out.append(Event(kind="identify", traits={"email": f"{anon}@example.com"}, **base))
        elif roll < 0.38:
            base["anonymous_id"] = anon
            out.append(Event(kind="identify", traits={}, **base))
        elif roll < 0.58:
            props = {"purpose": rng.choice(["marketing", "transactional", "service"]),
                     "channel": rng.choice(["email", "sms", "push", "phone"]),
                     "status": rng.choice(["granted", "granted", "withdrawn", "objected"]),
                     "actor": rng.choice(["customer", "operator"]),
                     "evidence": {"method": rng.choice(["double_opt_in", "web_form"])}}
            if props["status"] == "objected":
                props["purpose"] = "marketing"
            out.append(Event(kind="consent", properties=props, **base))
        elif roll < 0.7:
            out.append(Event(kind="track", event="Consent Updated", properties={
                "purpose": "marketing", "channel": rng.choice(["email", "sms"]),
                "status": rng.choice(["granted", "withdrawn"]),
                "evidence": {"method": rng.choice(["double_opt_in", "web_form"])}}, **base))
        elif roll < 0.82:
            out.append(Event(kind="message", properties={
                "message_id": f"msg-{i}", "status": rng.choice(["sent", "sent", "opened", "complained"]),
                "channel": "email", "contact_point": f"{user}@example.com",
                "intent": rng.choice(["marketing", "transactional"])}, **base))
        else:
            out.append(Event(kind="track", event=rng.choice(["Product Viewed", "Order Completed"]),
                             properties={"order_id": f"o{i}", "revenue": 5}, **base))
    return out


def _world(storage: Storage, seed: int) -> ProfileRunner:
    rng = random.Random(seed)
    result = storage.log.append(_random_events(rng, 120))
    assert result.stored > 0
    for k in rng.sample(range(10), 3):
        suppress(storage, "email", f"u{k}@example.com", "admin", T0)
    runner = ProfileRunner(storage, CONFIG, FixedClock(NOWS[0]))
    runner.catch_up()
    return runner


@pytest.mark.parametrize("seed", range(4))
def test_one_decision_per_purpose_equals_one_per_channel(storage: Storage, seed: int) -> None:
    from takt.policy.from_profile import person_from_profile
    from takt.policy.suppression_store import suppression_entries

    runner = _world(storage, seed)
    compared = 0
    for settings in (PolicySettings(), PolicySettings(email_marketing_requires_double_opt_in=False,
                                                      max_marketing_per_day=0)):
        settings = sf._settings(storage, settings)
        for pid in runner.profile_ids():
            state = runner.projector.profile(pid)
            assert state is not None
            events = storage.log.get(state.positions)
            facts = person_from_profile(state, events, CONFIG.identity,
                                        lambda points: suppression_entries(storage, points))
            for now in NOWS:
                assert sf.contactability(facts.person, settings, now) == \
                    sf.contactability_per_channel(facts.person, settings, now), pid
                compared += 1
    assert compared > 20


def _with_every_event(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sf, "needs_events", lambda state: True)


@pytest.mark.parametrize("seed", range(4))
def test_reading_only_the_needed_events_changes_nothing(storage: Storage, seed: int,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    runner = _world(storage, seed)
    ids = runner.profile_ids()
    skipped = [pid for pid in ids if (s := runner.projector.profile(pid)) is not None and not sf.needs_events(s)]
    assert skipped and len(skipped) < len(ids)  # both kinds of profile are there
    settings = sf._settings(storage, PolicySettings())
    for now in NOWS:
        fast = sf.contactability_of(storage, runner, ids, settings, now)
        with monkeypatch.context() as m:
            _with_every_event(m)
            full = sf.contactability_of(storage, runner, ids, settings, now)
        assert fast == full
        assert any(fast[pid] for pid in skipped)  # not only empty answers


@pytest.mark.parametrize("seed", range(4))
def test_the_folded_policy_facts_give_what_the_events_give(storage: Storage, seed: int,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """From the state's policy facts, no event is read, and every answer is the one reading every event gives."""
    from takt.policy import folded

    runner = _world(storage, seed)
    ids = runner.profile_ids()
    assert all(folded.exact(s) for pid in ids if (s := runner.projector.profile(pid)) is not None)
    settings = sf._settings(storage, PolicySettings())
    reads: list[int] = []
    get = storage.log.get

    def counting_get(positions: Any) -> Any:
        reads.append(len(positions))
        return get(positions)

    for now in NOWS:
        with monkeypatch.context() as m:
            m.setattr(storage.log, "get", counting_get)
            fast = sf.contactability_of(storage, runner, ids, settings, now)
        assert reads == [], "no event is read for states with folded policy facts"
        with monkeypatch.context() as m:
            m.setattr(folded, "exact", lambda state: False)
            _with_every_event(m)
            full = sf.contactability_of(storage, runner, ids, settings, now)
        assert fast == full
        assert any(fast.values())


def test_needs_events_reads_when_the_counts_do_not_cover_every_event(storage: Storage) -> None:
    runner = _world(storage, 7)
    state = next(s for pid in runner.profile_ids() if (s := runner.projector.profile(pid)) is not None
                 and s.positions and not sf.needs_events(s))
    state.stats["event_counts"] = {}
    assert sf.needs_events(state)
    state.stats.pop("event_counts")
    assert sf.needs_events(state)


def test_the_demo_gives_the_same_answers(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from takt.demo.feed import build_demo
    from takt.demo.generator import DemoConfig
    from takt.workspace import open_workspace

    end = datetime(2026, 11, 24, 22, 30, tzinfo=UTC)
    build_demo(tmp_path / "demo", DemoConfig(end=end, customers=25, days=120, seed=11), clock=FixedClock(end),
               transport="testclient")
    ws = open_workspace(tmp_path / "demo")
    with ws.open_storage() as storage:
        runner = ProfileRunner(storage, ProfileConfig.from_settings(ws.settings), FixedClock(end))
        runner.load()
        runner.catch_up()
        ids = runner.profile_ids()
        settings = sf._settings(storage, PolicySettings.from_settings(ws.settings))
        fast = sf.contactability_of(storage, runner, ids, settings, end)
        with monkeypatch.context() as m:
            _with_every_event(m)
            m.setattr(sf, "contactability", sf.contactability_per_channel)
            full = sf.contactability_of(storage, runner, ids, settings, end)
        assert fast == full and any(fast.values())
