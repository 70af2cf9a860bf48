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


# ---- third-party identifiers never keep a customer's own identifiers apart (issue 12 item 5) ----
VENDOR_PHONE = "+4915123456789"


def vendor(i: int, email: str, phone: str = VENDOR_PHONE) -> Event:
    return crm(i, {"email": email, "phone": phone}, provenance="third_party", source="enrichment-vendor")


def ann_and_bob(vendor_at: int) -> list[Event]:
    """Ann's CRM row knows her CRM id, email and loyalty card; her store purchases carry the loyalty card; her web
    login her email. Bob's CRM row has the phone number the enrichment vendor sold for Ann."""
    events = [
        crm(10, {"crm_id": "C2", "email": "bob@example.com", "phone": VENDOR_PHONE}),
        e(11, user_id="u-ann", traits={"email": "ann@example.com"}),
        crm(12, {"crm_id": "C1", "email": "ann@example.com", "loyalty_number": "L1"}),
        e(13, "track", source="store", provenance="observed", event="Order Completed",
          context={"traits": {"loyalty_number": "L1"}}, properties={"order_id": "S1", "revenue": 40}),
    ]
    events.insert(vendor_at, vendor(1, "ann@example.com"))
    return events


def test_a_vendor_phone_never_keeps_a_customers_crm_id_and_loyalty_card_apart() -> None:
    for vendor_at in range(5):
        g, log = run(ann_and_bob(vendor_at))
        ann = g.profile_of("crm_id:C1")
        assert ann is not None, vendor_at
        for ident in ("email:ann@example.com", "user_id:u-ann", "loyalty_number:L1"):
            assert g.profile_of(ident) == ann, (vendor_at, ident)
        bob = g.profile_of("crm_id:C2")
        assert bob != ann
        # Bob's own phone stays his; the vendor's word does not join two customers
        assert g.profile_of(f"phone:{VENDOR_PHONE}") == bob, vendor_at
        assert g.profile_of("email:bob@example.com") == bob
        assert not any(cf.reason == "unique" for cf in g.clusters[ann].conflicts.values()), vendor_at
        agree(g, log)


def test_a_vendor_identifier_no_one_else_has_joins_the_customer_and_yields_to_a_stronger_claim() -> None:
    g, log = run([
        crm(1, {"crm_id": "C1", "email": "ann@example.com"}),
        vendor(2, "ann@example.com"),
    ])
    ann = g.profile_of("crm_id:C1")
    assert g.profile_of(f"phone:{VENDOR_PHONE}") == ann  # enrichment of a known customer: found by it too
    agree(g, log)
    g, log = run([
        crm(1, {"crm_id": "C1", "email": "ann@example.com"}),
        vendor(2, "ann@example.com"),
        crm(3, {"crm_id": "C2", "email": "bob@example.com", "phone": VENDOR_PHONE}),
    ])
    ann, bob = g.profile_of("crm_id:C1"), g.profile_of("crm_id:C2")
    assert ann != bob and g.profile_of(f"phone:{VENDOR_PHONE}") == bob
    flagged = [cf for cf in g.clusters[ann].conflicts.values() if cf.reason == "outranked"]
    assert flagged and flagged[0].identifiers == ("crm_id:C2", f"phone:{VENDOR_PHONE}")
    assert VENDOR_PHONE not in " ".join(g.clusters[ann].identifiers)
    agree(g, log)


# ---- the store's customer number is the CRM id: identity.user_id_is ----
def test_user_id_is_links_store_purchases_by_user_id_to_the_crm_record() -> None:
    import pytest

    from takt.errors import SettingsError
    from takt.settings import load

    store = e(2, "track", source="store", provenance="observed", user_id="C100002", event="Order Completed",
              properties={"order_id": "S1", "revenue": 40})
    events = [crm(1, {"crm_id": "C100002", "email": "leon@example.com"}), store]
    g, _ = run(events)
    assert g.profile_of("user_id:C100002") != g.profile_of("crm_id:C100002")  # nothing says they are one
    cfg = IdentityConfig.from_settings(load(None, env={"TAKT_IDENTITY__USER_ID_IS": "crm_id"}))
    g = IdentityGraph(cfg)
    log = [StoredEvent(i, ev) for i, ev in enumerate(events, 1)]
    for s in log:
        g.resolve(s)
    assert g.profile_of("user_id:C100002") == g.profile_of("crm_id:C100002") == g.profile_of("email:leon@example.com")
    assert graph_equal(stitch_events(log, cfg), g) == {}
    with pytest.raises(SettingsError, match=r"identity\.user_id_is"):
        IdentityConfig.from_settings(load(None, env={"TAKT_IDENTITY__USER_ID_IS": "shoe_size"}))
