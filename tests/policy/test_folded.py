"""The policy facts the profile fold keeps (:mod:`takt.policy.folded`) give what a re-read of the person's events
gives: the same decisions, consent states and histories, consent changes, messages, contact points, touchpoints
and time zone, over random people (consent events and ``Consent Updated`` calls of every trust, messages,
invalid events, time zones, anonymous visitors merging into users, duplicates) and through the state's blob."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from takt.events.model import Event, StoredEvent
from takt.policy import Intent, decide
from takt.policy.config import PolicySettings
from takt.policy.folded import MESSAGE_RETENTION_DAYS, exact, fold_policy
from takt.policy.from_profile import PersonFacts, facts_from_state, person_from_profile
from takt.policy.suppression import contact_point_hash
from takt.profiles.config import ProfileConfig
from takt.profiles.projector import Projector
from takt.profiles.state import ProfileState
from takt.settings import load

T0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
CONFIG = ProfileConfig.from_settings(load(None, env={}))
PROVENANCES = ("customer_provided", "crm_import", "observed", "third_party")
KEY = b"k" * 32
SETTINGS = (PolicySettings(suppression_key=KEY),
            PolicySettings(email_marketing_requires_double_opt_in=False, max_marketing_per_day=0,
                           max_marketing_per_window=1, suppression_key=KEY))
CHANNEL_SETS = (("email", "in_app"), ("sms", "phone", "push"), ("email", "sms", "post", "social_dm"))


def _events(rng: random.Random, n: int, people: int) -> list[Event]:
    out: list[Event] = []
    for i in range(n):
        k = rng.randrange(people)
        user, anon = f"u{k}", f"a{k}"
        at = T0 + timedelta(hours=rng.randrange(0, 24 * 60))  # out of order: event time is not log order
        provenance = rng.choice(PROVENANCES)
        base: dict[str, Any] = {"message_id": f"m-{i}" if rng.random() < 0.95 else "m-0",  # some repeats
                                "source": "vendor" if provenance == "third_party" else "web",
                                "timestamp": at, "received_at": at + timedelta(minutes=rng.choice((0, 5, -5))),
                                "provenance": provenance, "user_id": user,
                                "trust": rng.choice(("server", "server", "verified", "public"))}
        if rng.random() < 0.3:
            base["context"] = {"timezone": rng.choice(["Europe/Berlin", "Asia/Tokyo", "Nowhere"]),
                               "locale": rng.choice(["de-DE", "en", "xx"])}
        roll = rng.random()
        if roll < 0.2:
            traits: dict[str, Any] = {}
            if rng.random() < 0.7:
                traits["email"] = f"{user}@example.com" if rng.random() < 0.8 else f"{user}.alt@example.com"
            if rng.random() < 0.4:
                traits["phone"] = f"+49151{k:07d}"
            if rng.random() < 0.15:
                traits["preferred_channel"] = rng.choice(("email", "sms", "in_app"))
            if rng.random() < 0.1:
                traits["timezone"] = rng.choice(["Europe/Lisbon", "Pacific/Auckland"])
            out.append(Event(kind="identify", traits=traits, **base))
        elif roll < 0.3:  # an anonymous visitor's own events (consent included), merged into the user later
            base.update(user_id=None, anonymous_id=anon)
            if rng.random() < 0.5:
                out.append(Event(kind="identify", traits={"email": f"{anon}@example.com"}, **base))
            else:
                out.append(Event(kind="consent", properties={
                    "purpose": "marketing", "channel": "email", "status": rng.choice(["granted", "withdrawn"]),
                    "actor": "customer", "evidence": {"method": "double_opt_in"}}, **base))
        elif roll < 0.36:  # the link: anonymous visitor and user are one person
            base["anonymous_id"] = anon
            out.append(Event(kind="identify", traits={}, **base))
        elif roll < 0.56:
            props = {"purpose": rng.choice(["marketing", "transactional", "service"]),
                     "channel": rng.choice(["email", "sms", "push", "phone"]),
                     "status": rng.choice(["granted", "granted", "withdrawn", "objected"]),
                     "actor": rng.choice(["customer", "admin", "import"]),
                     "evidence": {"method": rng.choice(["double_opt_in", "web_form"])}}
            if rng.random() < 0.3:
                props["contact_point"] = f"{user}@example.com"
                props["channel"] = "email"
            if rng.random() < 0.05:
                props["status"] = "maybe"  # invalid: skipped, and said so
            out.append(Event(kind="consent", properties=props, **base))
        elif roll < 0.66:
            out.append(Event(kind="track", event="Consent Updated", properties=rng.choice([
                {"purpose": "marketing", "channel": rng.choice(["email", "sms"]),
                 "status": rng.choice(["granted", "withdrawn"]),
                 "evidence": {"method": rng.choice(["double_opt_in", "web_form"])}},
                {"consents": [{"purpose": "marketing", "channel": "email", "status": "granted"},
                              {"purpose": "service", "status": "withdrawn"}]},
                {"purpose": "marketing", "status": "granted", "channel": "fax"}]), **base))  # the last: invalid
        elif roll < 0.84:
            mid = f"msg-{rng.randrange(8)}"  # several steps of one message
            out.append(Event(kind="message", properties={
                "message_id": mid, "status": rng.choice(["sent", "delivered", "opened", "clicked", "complained"]),
                "channel": rng.choice(["email", "sms"]), "contact_point": f"{user}@example.com",
                "intent": rng.choice(["marketing", "transactional"])}, **base))
        elif roll < 0.86:
            out.append(Event(kind="message", properties={"message_id": "x", "status": "lost"}, **base))
        else:
            out.append(Event(kind="track", event="Product Viewed", properties={"product_id": f"p{i}"}, **base))
    return out


def _suppressed(rng: random.Random) -> Any:
    hashes = {contact_point_hash(KEY, "email", f"u{k}@example.com") for k in range(6) if rng.random() < 0.3}

    def lookup(points: Any) -> list[str]:
        return [h for cp in points if (h := contact_point_hash(KEY, cp.kind, cp.value)) in hashes]
    return lookup


def _changes(f: PersonFacts) -> list[tuple[Any, ...]]:
    """What the API shows of a consent change (the fold keeps no more of its event)."""
    return [(pos, e.kind, e.message_id, e.source, e.provenance, e.trust, e.timestamp, e.received_at, e.properties)
            for pos, e in f.consent_events]


def _same(a: PersonFacts, b: PersonFacts) -> None:
    pa, pb = a.person, b.person
    assert pa.contact_points == pb.contact_points
    assert pa.consent.states() == pb.consent.states()
    assert _changes(a) == _changes(b)
    assert sorted(a.skipped, key=repr) == sorted(b.skipped, key=repr)
    assert pa.messages == pb.messages
    assert dict(pa.touchpoints) == dict(pb.touchpoints)
    assert (pa.preferred_channel, pa.time_zone) == (pb.preferred_channel, pb.time_zone)
    assert (pa.suppressed, pa.suppressed_marketing) == (pb.suppressed, pb.suppressed_marketing)


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 90), people=st.integers(1, 6))
def test_decide_from_the_fold_equals_decide_from_the_events(seed: int, n: int, people: int) -> None:
    rng = random.Random(seed)
    events = _events(rng, n, people)
    projector = Projector(CONFIG)
    projector.apply(StoredEvent(i + 1, e) for i, e in enumerate(events))
    lookup = _suppressed(rng)
    compared = 0
    for pid in projector.profiles():
        live = projector.profile(pid)
        assert live is not None
        state = ProfileState.from_blob(pid, live.to_blob())  # what the store and the published state hold
        assert exact(state)
        reread = person_from_profile(state, projector.events.get(state.positions), CONFIG.identity, lookup)
        fromfold = facts_from_state(state, lookup)
        _same(fromfold, reread)
        for policy in SETTINGS:
            for intent in ("marketing", "transactional", "service"):
                for channels in CHANNEL_SETS:
                    for hours in (0, 24 * 30, 24 * 61, 24 * 62 + 22):
                        at = T0 + timedelta(hours=hours)
                        assert decide(fromfold.person, Intent(intent), channels, at, policy) == \
                            decide(reread.person, Intent(intent), channels, at, policy), (pid, intent, channels)
                        compared += 1
    assert compared > 0


def _message(i: int, at: datetime, status: str = "sent") -> StoredEvent:
    return StoredEvent(i, Event(kind="message", message_id=f"e{i}", source="crm", timestamp=at, received_at=at,
                                properties={"message_id": f"msg-{i}", "status": status, "channel": "email",
                                            "intent": "marketing"}))


def test_old_messages_leave_the_state_and_their_engagement_stays() -> None:
    state = ProfileState("p1")
    for i in range(30):
        stored = _message(i + 1, T0 + timedelta(days=30 * i), "opened" if i % 2 else "sent")
        state.note(stored.position, stored.event.source, stored.event.message_id)
        fold_policy(state, stored)
    facts = facts_from_state(state)
    kept = facts.person.messages
    newest = max(m.sent_at for m in kept)
    assert min(m.sent_at for m in kept) >= newest - timedelta(days=MESSAGE_RETENTION_DAYS)
    assert len(kept) < 30  # bounded
    assert facts.person.touchpoints["email"] == 15  # every open still counts toward channel choice


def test_a_state_written_before_the_section_is_read_from_the_events() -> None:
    state = ProfileState("p1")
    state.policy = None
    assert not exact(state)
    old = ProfileState.from_dict({k: v for k, v in state.to_dict().items() if k != "policy"})
    assert old.policy is None
