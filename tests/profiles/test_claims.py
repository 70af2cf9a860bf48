"""Contact points are trusted before use (issue 11 story 2): what only public events assert is a claim, shown with
its provenance and never displacing a trusted value; decide never chooses it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from takt.events.model import Event, StoredEvent
from takt.policy.decide import Intent, decide
from takt.policy.from_profile import person_from_profile
from takt.profiles.projector import Projector
from takt.profiles.state import ProfileState
from tests.policy.builders import SETTINGS
from tests.profiles.helpers import CONFIG

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)  # a Monday morning: no quiet hours


def e(i: int, kind: str = "identify", *, trust: str = "server", provenance: str = "customer_provided",
      source: str = "website", **fields: Any) -> Event:
    at = T0 + timedelta(minutes=i)
    return Event(kind=kind, message_id=f"m-{i}", source=source, timestamp=at, received_at=at, provenance=provenance,
                 trust=trust, **fields)


def project(events: list[Event]) -> tuple[Projector, list[StoredEvent]]:
    p = Projector(CONFIG)
    log = [StoredEvent(i, ev) for i, ev in enumerate(events, 1)]
    p.apply(log)
    return p, log


def state_of(p: Projector, identifier: str) -> ProfileState:
    s = p.profile_for(identifier)
    assert s is not None
    return s


def decision(p: Projector, log: list[StoredEvent], state: ProfileState, purpose: str = "transactional",
             channels: tuple[str, ...] = ("email",)) -> Any:
    mine = [s for s in log if s.position in set(state.positions)]
    facts = person_from_profile(state, mine, CONFIG.identity)
    return decide(facts.person, Intent(purpose), channels, NOW, SETTINGS)


def contacts(p: Projector, state: ProfileState) -> dict[str, dict[str, Any]]:
    view = p.to_json(state.id, NOW)
    return {f"{c['type']}:{c['value']}": c for c in view["contact_points"]}


HIJACK = [
    e(1, user_id="v2", traits={"email": "v2@example.com"}),
    e(2, anonymous_id="att", traits={"email": "v2@example.com"}, trust="public"),
    e(3, anonymous_id="att", traits={"email": "attacker@evil.example"}, trust="public"),
]


def test_hijack_the_attackers_address_is_a_claim_on_his_own_profile_and_never_chosen() -> None:
    p, log = project(HIJACK)
    v2, att = state_of(p, "user_id:v2"), state_of(p, "anonymous_id:att")
    assert v2.id != att.id
    assert set(v2.contacts) == {"email:v2@example.com"}
    shown = contacts(p, att)
    assert set(shown) == {"email:v2@example.com", "email:attacker@evil.example"}
    for c in shown.values():
        assert c["claim"] is True and c["trust"] == "public" and c["provenance"] == "customer_provided"
    assert contacts(p, v2)["email:v2@example.com"]["claim"] is False
    for purpose in ("transactional", "service", "marketing"):
        d = decision(p, log, att, purpose)
        assert not d.allowed
        assert "claimed_contact_point" in d.codes()
    d = decision(p, log, v2)
    assert d.allowed and d.contact_point == "v2@example.com"


def test_a_claim_on_a_known_customer_never_displaces_the_trusted_address() -> None:
    """The customer's own browser (a public key) states a new address: shown as a claim; the trusted one is used."""
    p, log = project([
        e(1, "record", provenance="crm_import", source="crm",
          properties={"record_type": "customer", "row_key": "r1", "identifiers": {"crm_id": "C1"},
                      "traits": {"email": "v2@example.com", "first_name": "Vera"},
                      "contact_points_customer_given": True}),
        e(2, user_id="v2", traits={"crm_id": "C1"}),
        e(3, user_id="v2", traits={"email": "attacker@evil.example", "first_name": "Mallory"}, trust="public"),
    ])
    v2 = state_of(p, "user_id:v2")
    assert v2.traits["email"]["value"] == "v2@example.com"  # a customer_provided claim ranks below crm_import
    assert v2.traits["first_name"]["value"] == "Vera"
    shown = contacts(p, v2)
    assert shown["email:attacker@evil.example"]["claim"] is True
    assert shown["email:v2@example.com"]["claim"] is False
    d = decision(p, log, v2)
    assert d.allowed and d.contact_point == "v2@example.com"


def test_a_claim_does_not_touch_a_trusted_contact_points_provenance_or_given_mark() -> None:
    p, _ = project([
        e(1, "record", provenance="crm_import", source="crm",
          properties={"record_type": "customer", "row_key": "r1", "identifiers": {"crm_id": "C1"},
                      "traits": {"email": "v2@example.com"}, "contact_points_customer_given": False}),
        e(2, user_id="v2", traits={"crm_id": "C1"}),
        e(3, user_id="v2", traits={"email": "v2@example.com", "email_verified": True}, trust="public"),
        e(4, "track", user_id="v2", event="Email Verified", properties={"email": "v2@example.com"}, trust="public"),
    ])
    c = state_of(p, "user_id:v2").contacts["email:v2@example.com"]
    assert (c["provenance"], c["customer_given"], c["verified"]) == ("crm_import", False, False)
    assert c.get("trust", "server") == "server"


def test_a_verified_or_server_event_makes_a_claimed_contact_point_usable() -> None:
    claim = e(1, user_id="v2", traits={"email": "v2@example.com"}, trust="public")
    p, log = project([claim])
    assert not decision(p, log, state_of(p, "user_id:v2")).allowed
    for trust in ("verified", "server"):
        p, log = project([claim, e(2, user_id="v2", traits={"email": "V2@example.com "}, trust=trust)])
        v2 = state_of(p, "user_id:v2")
        c = v2.contacts["email:v2@example.com"]
        assert c.get("trust", "server") == trust
        assert contacts(p, v2)["email:v2@example.com"]["claim"] is False
        d = decision(p, log, v2)
        assert d.allowed and d.contact_point == "v2@example.com"


def test_a_double_opt_in_confirmation_through_a_server_key_makes_a_claim_usable() -> None:
    def doi(i: int, trust: str, contact_point: str | None = "v2@example.com") -> Event:
        props: dict[str, Any] = {"purpose": "marketing", "channel": "email", "status": "granted",
                                 "actor": "customer", "evidence": {"method": "double_opt_in", "source": "dsp"}}
        if contact_point:
            props["contact_point"] = contact_point
        return e(i, "consent", user_id="v2", trust=trust, properties=props)

    claim = e(1, user_id="v2", traits={"email": "v2@example.com"}, trust="public")
    p, log = project([claim, doi(2, "server")])
    d = decision(p, log, state_of(p, "user_id:v2"))
    assert d.allowed and d.contact_point == "v2@example.com"
    # reported by the public client itself: still a claim; and a confirmation must name the address
    for other in (doi(2, "public"), doi(2, "server", None)):
        p, log = project([claim, other])
        d = decision(p, log, state_of(p, "user_id:v2"))
        assert not d.allowed and "claimed_contact_point" in d.codes()


# ---- rebuild == live ----
def test_batches_and_restore_give_the_same_profiles_as_one_replay() -> None:
    from tests.identity.test_trust import ann_and_bob

    events = [*HIJACK, *[ev for ev in ann_and_bob(0)],
              e(30, user_id="v2", traits={"email": "other@example.com"}, trust="public"),
              e(31, user_id="v2", traits={"email": "other@example.com"}, trust="verified")]
    events = [Event(**{**{f: getattr(x, f) for f in x.__dataclass_fields__}, "message_id": f"x-{i}"})
              for i, x in enumerate(events)]
    whole, _ = project(events)
    for size in (1, 2, 3):
        p = Projector(CONFIG)
        log = [StoredEvent(i, ev) for i, ev in enumerate(events, 1)]
        for k in range(0, len(log), size):
            p.apply(log[k:k + size])
            if k == 3:
                p = Projector.restore(p.snapshot(), CONFIG, events=p.events)
        assert p.snapshot() == whole.snapshot()


# ---- no sequence of public events changes which contact points decide may use ----
from dataclasses import replace  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from takt.policy.vocab import CHANNEL_KIND  # noqa: E402

BASE = [
    e(1, user_id="v2", anonymous_id="v2-laptop", traits={"email": "v2@example.com"}),
    e(2, "record", provenance="crm_import", source="crm",
      properties={"record_type": "customer", "row_key": "r1", "identifiers": {"crm_id": "C1"},
                  "traits": {"email": "v2@example.com", "phone": "+4930123456"},
                  "contact_points_customer_given": True}),
    e(3, user_id="v2", traits={"crm_id": "C1"}),
]
EMAILS = ["v2@example.com", "attacker@evil.example", "x@example.com"]
PHONES = ["+4930123456", "+4915123456789"]


def public_event(i: int, kind: str, user: str | None, anon: str | None, email: str, phone: str, flag: bool) -> Event:
    at = {"user_id": user, "anonymous_id": anon or (None if user else "att")}
    if kind == "identify":
        traits: dict[str, Any] = {"email": email, "phone": phone, "email_verified": flag, "first_name": "M"}
        return e(i, trust="public", traits=traits, **at)
    if kind == "verified":
        return e(i, "track", trust="public", event="Email Verified", properties={"email": email}, **at)
    if kind == "doi":
        return e(i, "consent", trust="public", properties={
            "purpose": "marketing", "channel": "email", "contact_point": email, "status": "granted",
            "actor": "customer", "evidence": {"method": "double_opt_in"}}, **at)
    return e(i, "track", trust="public", event="Product Viewed", context={"traits": {"email": email}}, **at)


public_steps = st.lists(st.tuples(
    st.sampled_from(["identify", "identify", "verified", "doi", "track"]),
    st.sampled_from([None, "v2", "mallory"]), st.sampled_from([None, "att", "v2-laptop"]),
    st.sampled_from(EMAILS), st.sampled_from(PHONES), st.booleans()), max_size=8)


def usable(p: Projector, log: list[StoredEvent]) -> dict[str, set[str]]:
    """Per person (by their first identifier known to the base log), the contact points decide would use."""
    out: dict[str, set[str]] = {}
    for pid in p.profiles():
        state = p.profile(pid)
        assert state is not None
        mine = [s for s in log if s.position in set(state.positions)]
        person = person_from_profile(state, mine, CONFIG.identity).person
        ok: set[str] = set()
        for cp in person.contact_points:
            channel = next(ch for ch, kind in CHANNEL_KIND.items() if kind == cp.kind)
            for purpose in ("transactional", "service"):
                if decide(replace(person, contact_points=(cp,)), Intent(purpose), [channel], NOW, SETTINGS).allowed:
                    ok.add(f"{purpose}:{cp.value}")
        cluster = p.identity.clusters[pid]
        who = "v2" if "user_id:v2" in cluster.identifiers else pid
        out.setdefault(who, set()).update(ok)
    return out


@settings(max_examples=60, deadline=None)
@given(raw=public_steps)
def test_no_sequence_of_public_events_changes_which_contact_points_decide_may_use(raw: list[Any]) -> None:
    base, base_log = project(BASE)
    expected = usable(base, base_log)
    assert expected == {"v2": {"transactional:v2@example.com", "service:v2@example.com",
                               "transactional:+4930123456", "service:+4930123456"}}
    events = [*BASE, *(public_event(10 + i, *step) for i, step in enumerate(raw))]
    p, log = project(events)
    found = usable(p, log)
    assert found.pop("v2") == expected["v2"]
    assert all(not points for points in found.values())  # profiles made of public events: nothing usable


def test_contactability_agrees_with_decide_on_claims() -> None:
    from takt.policy.segment_functions import contactability, contactability_per_channel

    p, log = project(HIJACK)
    for ident, expect_email in (("user_id:v2", True), ("anonymous_id:att", False)):
        state = state_of(p, ident)
        mine = [s for s in log if s.position in set(state.positions)]
        person = person_from_profile(state, mine, CONFIG.identity).person
        pairs = contactability(person, SETTINGS, NOW)
        assert pairs == contactability_per_channel(person, SETTINGS, NOW)
        assert (("email", "transactional") in pairs) is expect_email
        assert (("email", "service") in pairs) is expect_email


def test_weak_members_and_claims_survive_a_store_with_a_one_profile_cache() -> None:
    """Identity rows in DuckDB (a weak member taken by Bob's CRM row moves between stored clusters) give what an
    in-memory projector gives, event by event and after a restart from the store."""
    import tempfile
    from pathlib import Path

    from takt.profiles.projector import MemoryEvents
    from takt.storage.duckdb import DuckDBStorage
    from tests.identity.test_trust import ann_and_bob

    events = [*HIJACK, *[Event(**{**{f: getattr(x, f) for f in x.__dataclass_fields__}, "message_id": f"x-{i}"})
                         for i, x in enumerate(ann_and_bob(0))]]
    log = [StoredEvent(i, ev) for i, ev in enumerate(events, 1)]
    ref = Projector(CONFIG)
    ref.apply(log)
    with tempfile.TemporaryDirectory() as d, DuckDBStorage(Path(d) / "t.duckdb") as s:
        p = Projector(CONFIG, MemoryEvents(), s.profiles, cache_size=1)
        for stored in log:
            p.apply([stored])
            p.persist()
        views = {pid: p.to_json(pid, NOW) for pid in p.profiles()}
        assert views == {pid: ref.to_json(pid, NOW) for pid in ref.profiles()}
        again = Projector.from_store(s.profiles, CONFIG, MemoryEvents(), cache_size=1)
        assert again is not None
        assert {pid: again.to_json(pid, NOW) for pid in again.profiles()} == views
        assert again.identity.profile_of("phone:+4915123456789") == again.identity.profile_of("crm_id:C2")
