"""Trust in identity resolution: a public event's claims never link people; a third party's identifiers never keep
a customer's own identifiers apart. The incremental graph and the bulk stitcher agree on all of it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from takt.events.model import Event, StoredEvent
from takt.identity.bulk import graph_equal, stitch_events
from takt.identity.config import IdentityConfig
from takt.identity.extract import identifiers_of
from takt.identity.resolver import IdentityGraph

CFG = IdentityConfig.build()
T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def e(i: int, kind: str = "identify", *, trust: str = "server", provenance: str = "customer_provided",
      source: str = "website", **fields: Any) -> Event:
    at = T0 + timedelta(minutes=i)
    return Event(kind=kind, message_id=f"m-{i}", source=source, timestamp=at, received_at=at, provenance=provenance,
                 trust=trust, **fields)


def crm(i: int, identifiers: dict[str, str], provenance: str = "crm_import", source: str = "crm") -> Event:
    return e(i, "record", provenance=provenance, source=source,
             properties={"record_type": "customer", "row_key": f"r{i}", "identifiers": identifiers})


def run(events: list[Event]) -> tuple[IdentityGraph, list[StoredEvent]]:
    g = IdentityGraph(CFG)
    log = [StoredEvent(i, ev) for i, ev in enumerate(events, 1)]
    for s in log:
        g.resolve(s)
    return g, log


def agree(g: IdentityGraph, log: list[StoredEvent]) -> None:
    assert graph_equal(stitch_events(log, CFG), g) == {}


# ---- public claims ----
HIJACK = [
    e(1, user_id="v2", traits={"email": "v2@example.com"}),
    e(2, anonymous_id="att", traits={"email": "v2@example.com"}, trust="public"),
    e(3, anonymous_id="att", traits={"email": "attacker@evil.example"}, trust="public"),
]


def test_a_public_email_claim_never_merges_a_visitor_into_a_customer() -> None:
    g, log = run(HIJACK)
    v2, att = g.profile_of("user_id:v2"), g.profile_of("anonymous_id:att")
    assert v2 is not None and att is not None and v2 != att
    assert g.profile_of("email:v2@example.com") == v2
    # The attacker's own address is no identifier of anyone: a claim belongs on the sender's profile only.
    assert g.profile_of("email:attacker@evil.example") is None
    assert g.clusters[v2].identifiers == ["user_id:v2", "email:v2@example.com"]
    assert not g.clusters[v2].merges and not g.clusters[att].merges
    agree(g, log)


def test_a_public_claim_before_the_customer_does_not_capture_the_address() -> None:
    """The attacker claims first; the customer's own account, later, is not pulled onto the attacker's profile."""
    g, log = run([HIJACK[1], HIJACK[0]])
    assert g.profile_of("user_id:v2") != g.profile_of("anonymous_id:att")
    assert g.profile_of("email:v2@example.com") == g.profile_of("user_id:v2")
    agree(g, log)


def test_public_identifiers_of_keep_user_id_anonymous_id_and_device() -> None:
    ev = e(1, user_id="u1", anonymous_id="a1", trust="public",
           traits={"email": "x@example.com", "phone": "030 1234567", "crm_id": "C1", "instagram": "@x"},
           context={"device": {"id": "d1"}, "traits": {"email": "y@example.com"}})
    assert identifiers_of(ev, CFG) == ("user_id:u1", "device_id:d1", "anonymous_id:a1")
    # the same event from the server: every identifier counts, as before
    assert len(identifiers_of(e(1, user_id="u1", anonymous_id="a1", traits=ev.traits, context=ev.context), CFG)) == 8


def test_login_links_a_device_through_a_public_identify_with_user_id() -> None:
    g, log = run([
        e(1, "track", anonymous_id="phone-anon", trust="public", event="Product Viewed"),
        e(2, user_id="v2", traits={"email": "v2@example.com"}),
        e(3, user_id="v2", anonymous_id="phone-anon", trust="public"),
    ])
    assert g.profile_of("anonymous_id:phone-anon") == g.profile_of("user_id:v2")
    agree(g, log)


def test_verified_events_link_by_email_as_server_events_do() -> None:
    g, log = run([
        e(1, user_id="v2", traits={"email": "v2@example.com"}),
        e(2, anonymous_id="tab", traits={"email": "v2@example.com"}, trust="verified"),
    ])
    assert g.profile_of("anonymous_id:tab") == g.profile_of("user_id:v2")
    agree(g, log)
