from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from takt.errors import TaktError
from takt.events.model import StoredEvent
from takt.profiles.config import ProfileConfig
from takt.profiles.derived import INTEREST_SHIFTED
from takt.profiles.projector import MemoryEvents, Projector
from tests.factories import ev
from tests.profiles.helpers import CONFIG, TAXONOMY, project, search, stored

NOV_NOW = datetime(2026, 11, 20, tzinfo=UTC)


def krabi_then_new_york() -> list:
    feb = datetime(2026, 2, 10, 20, 0, tzinfo=UTC)
    nov = datetime(2026, 11, 10, 0, 0, tzinfo=UTC)
    return [
        search(1, "beach hotels Krabi", feb),
        search(2, "krabi island hopping", feb + timedelta(minutes=5)),
        search(3, "Krabi in March", feb + timedelta(minutes=9)),
        search(4, "flights to New York", nov),
        search(5, "New-York christmas markets", nov + timedelta(minutes=3)),
    ]


def test_krabi_to_new_york() -> None:
    p, derived = project(krabi_then_new_york())
    profile = p.to_json(p.profiles()[0], NOV_NOW)
    interests = {i["key"]: i["score"] for i in profile["interests"]}
    assert [i["key"] for i in profile["interests"]] == ["destination:new-york", "destination:krabi"]
    # Two searches of weight 2 on Nov 10, read ten days later with a 21-day half-life.
    assert interests["destination:new-york"] == pytest.approx(
        2 * 2 ** (-10 / 21) + 2 * 2 ** (-(10 * 86400 - 180) / (21 * 86400)), rel=1e-6)
    assert interests["destination:krabi"] < 0.01
    assert len(derived) == 1
    (shift,) = derived
    assert shift.kind == INTEREST_SHIFTED
    assert shift.properties["from"] == "destination:krabi"
    assert shift.properties["to"] == "destination:new-york"
    assert shift.properties["cause"]["message_id"] == "m-4"
    assert shift.properties["profile_id"] == profile["id"]
    assert shift.timestamp == datetime(2026, 11, 10, 0, 0, tzinfo=UTC)
    assert profile["top_interest"] == "destination:new-york"


def test_interest_shift_is_derived_once_across_replays_and_ignored_when_fed_back() -> None:
    events = krabi_then_new_york()
    p1, d1 = project(events)
    p2, d2 = project(events)
    assert [e.message_id for e in d1] == [e.message_id for e in d2]
    before = p1.snapshot()["profiles"]
    assert p1.apply([StoredEvent(6, d1[0])]) == []
    assert p1.snapshot()["profiles"] == before


def test_in_february_krabi_is_top_and_nothing_shifted() -> None:
    p, derived = project(krabi_then_new_york()[:3])
    profile = p.to_json(p.profiles()[0], datetime(2026, 2, 11, tzinfo=UTC))
    assert profile["interests"][0]["key"] == "destination:krabi"
    assert derived == []


def test_anonymous_browsing_then_login_on_two_devices_is_one_profile() -> None:
    t = datetime(2026, 11, 2, 8, tzinfo=UTC)
    p, _ = project([
        ev(1, user_id=None, anonymous_id="phone", event="Product Viewed", at=t,
           context={"library": {"name": "analytics-ios"}}, properties={"category": "Tents"}),
        ev(2, user_id=None, anonymous_id="laptop", event="Product Viewed", at=t + timedelta(hours=1),
           context={"library": {"name": "analytics.js"}}, properties={"category": "Tents"}),
        ev(3, kind="identify", user_id="u1", anonymous_id="laptop", at=t + timedelta(hours=2),
           traits={"email": "a@x.com"}, provenance="customer_provided"),
        ev(4, kind="identify", user_id="u1", anonymous_id="phone", at=t + timedelta(hours=3)),
    ])
    assert len(p.profiles()) == 1
    prof = p.profile_for("email:A@x.com")
    assert prof is not None
    assert p.profile_for("anonymous_id:phone") is prof
    view = p.to_json(prof.id, t + timedelta(hours=3))
    assert view["stats"]["events"] == 4
    assert view["stats"]["event_counts"] == {"Product Viewed": 2, "identify": 2}
    assert set(view["touchpoints"]) == {"app", "web"}
    # The identify calls name no library: their source "web" is the touchpoint.
    assert {ch: tp["count"] for ch, tp in view["touchpoints"].items()} == {"app": 1, "web": 3}
    assert view["interests"][0]["key"] == "category:tents"
    assert len(view["merges"]) == 1


def test_shared_tablet_with_two_user_ids_is_a_visible_conflict() -> None:
    p, _ = project([
        ev(1, user_id="alice", anonymous_id="tablet"),
        ev(2, user_id="bob", anonymous_id="tablet"),
    ])
    assert len(p.profiles()) == 2
    alice = p.profile_for("user_id:alice")
    bob = p.profile_for("user_id:bob")
    assert alice is not None and bob is not None and alice.id != bob.id
    view = p.to_json(bob.id, NOV_NOW)
    assert view["identifiers"] == ["user_id:bob"]
    (conflict,) = view["conflicts"]
    assert conflict["type"] == "user_id"
    assert sorted(conflict["values"]) == ["alice", "bob"]
    assert view["stats"]["events"] == 1


def test_unmerge_splits_the_profile_and_later_events_follow() -> None:
    t = datetime(2026, 11, 3, tzinfo=UTC)
    p, _ = project([
        ev(1, user_id="u1", anonymous_id="shared", at=t, event="Order Completed",
           properties={"order_id": "o1", "revenue": 10}),
        ev(2, user_id=None, anonymous_id="shared", at=t + timedelta(hours=1), event="Order Completed",
           properties={"order_id": "o2", "revenue": 5}),
    ])
    pid = p.profiles()[0]
    assert p.to_json(pid, t)["stats"]["orders"]["count"] == 2
    p.apply([StoredEvent(3, ev(3, kind="identity.unmerge", user_id=None, source="admin",
                                properties={"identifier": "anonymous_id:shared"}))])
    assert len(p.profiles()) == 2
    u1 = p.profile_for("user_id:u1")
    shared = p.profile_for("anonymous_id:shared")
    assert u1 is not None and shared is not None and u1.id != shared.id
    assert u1.id == pid
    # Event 1's anchor is user_id:u1, event 2's anonymous_id:shared.
    assert p.to_json(u1.id, t)["stats"]["orders"]["last_order_id"] == "o1"
    assert p.to_json(shared.id, t)["stats"]["orders"]["last_order_id"] == "o2"
    p.apply([StoredEvent(4, ev(4, user_id=None, anonymous_id="shared", at=t + timedelta(hours=2),
                                event="Order Completed", properties={"order_id": "o3", "revenue": 1}))])
    assert p.to_json(shared.id, t)["stats"]["orders"]["count"] == 2
    assert p.to_json(u1.id, t)["stats"]["orders"]["count"] == 1
    assert p.to_json(shared.id, t)["splits"][0]["identifier"] == "anonymous_id:shared"


def test_third_party_phone_keeps_its_provenance_next_to_the_customers_email() -> None:
    t = datetime(2026, 11, 4, tzinfo=UTC)
    p, _ = project([
        ev(1, kind="identify", user_id="u1", at=t, traits={"email": "Me@x.com"}, provenance="customer_provided",
           source="signup"),
        ev(2, kind="identify", user_id="u1", at=t + timedelta(days=1), traits={"phone": "030 7654321"},
           provenance="third_party", source="databroker"),
    ])
    view = p.to_json(p.profiles()[0], t)
    contacts = {c["type"]: c for c in view["contact_points"]}
    assert contacts["email"]["value"] == "me@x.com"
    assert contacts["email"]["provenance"] == "customer_provided"
    assert contacts["email"]["customer_given"] is True
    assert contacts["phone"]["value"] == "+49307654321"
    assert contacts["phone"]["provenance"] == "third_party"
    assert contacts["phone"]["source"] == "databroker"
    assert contacts["phone"]["customer_given"] is False


def test_trait_rank_customer_input_beats_third_party_even_when_older() -> None:
    t = datetime(2026, 11, 4, tzinfo=UTC)
    events = [
        ev(1, kind="identify", user_id="u1", at=t, traits={"first_name": "Robert", "city": "Köln"},
           provenance="customer_provided"),
        ev(2, kind="identify", user_id="u1", at=t + timedelta(days=1), traits={"first_name": "Bob"},
           provenance="third_party", source="broker"),
        ev(3, kind="identify", user_id="u1", at=t + timedelta(days=2), traits={"city": "Bonn"},
           provenance="customer_provided"),
    ]
    p, _ = project(events)
    traits = p.to_json(p.profiles()[0], t)["traits"]
    assert traits["first_name"]["value"] == "Robert"
    assert traits["first_name"]["provenance"] == "customer_provided"
    assert traits["first_name"]["event"] == {"position": 1, "message_id": "m-1"}
    assert traits["city"]["value"] == "Bonn"  # equal rank: the later one
    reversed_rank = ProfileConfig(trait_rank=("third_party", "observed", "crm_import", "customer_provided"))
    p2, _ = project(events, reversed_rank)
    assert p2.to_json(p2.profiles()[0], t)["traits"]["first_name"]["value"] == "Bob"


def test_crm_import_rows_keep_the_customer_given_flag() -> None:
    t = datetime(2026, 11, 5, tzinfo=UTC)
    p, _ = project([
        ev(1, kind="record", user_id=None, at=t, provenance="crm_import", source="crm", properties={
            "record_type": "customer", "row_key": "C1", "identifiers": {"crm_id": "C1", "email": "a@x.com"},
            "traits": {"first_name": "Ada"}, "contact_points_customer_given": True}),
        ev(2, kind="record", user_id=None, at=t, provenance="crm_import", source="crm", properties={
            "record_type": "customer", "row_key": "C2", "identifiers": {"crm_id": "C2", "phone": "+4930999999"},
            "contact_points_customer_given": False}),
    ])
    a = p.to_json(p.profile_for("crm_id:C1").id, t)  # type: ignore[union-attr]
    b = p.to_json(p.profile_for("crm_id:C2").id, t)  # type: ignore[union-attr]
    assert [(c["value"], c["provenance"], c["customer_given"]) for c in a["contact_points"]] == [
        ("a@x.com", "crm_import", True)]
    assert [(c["value"], c["customer_given"]) for c in b["contact_points"]] == [("+4930999999", False)]
    assert a["traits"]["first_name"]["provenance"] == "crm_import"


def test_verification_by_track_and_by_trait() -> None:
    t = datetime(2026, 11, 5, tzinfo=UTC)
    p, _ = project([
        ev(1, kind="identify", user_id="u1", at=t, traits={"email": "a@x.com", "phone": "030 1234567"}),
        ev(2, user_id="u1", at=t + timedelta(hours=1), event="Email Verified", properties={"email": "A@x.com"}),
        ev(3, kind="identify", user_id="u1", at=t + timedelta(hours=2),
           traits={"phone": "030 1234567", "phone_verified": True}),
    ])
    view = p.to_json(p.profiles()[0], t)
    got = {c["type"]: (c["verified"], c["verified_at"]) for c in view["contact_points"]}
    assert got == {"email": (True, "2026-11-05T01:00:00.000000Z"), "phone": (True, "2026-11-05T02:00:00.000000Z")}


def test_orders_returns_cases_and_repairs_from_tracks_and_records() -> None:
    t = datetime(2026, 11, 6, tzinfo=UTC)
    p, _ = project([
        ev(1, user_id="u1", at=t, event="Order Completed", properties={
            "order_id": "o1", "revenue": 100.0, "products": [{"category": "Tents"}, {"category": "Stoves"}]}),
        ev(2, kind="record", user_id=None, at=t + timedelta(days=1), provenance="crm_import", properties={
            "record_type": "order", "row_key": "o2", "order_id": "o2", "total": 50,
            "identifiers": {"user_id": "u1"}, "category": "Tents"}),
        ev(3, kind="record", user_id=None, at=t + timedelta(days=1), provenance="crm_import", properties={
            "record_type": "order", "row_key": "o1", "order_id": "o1", "total": 100,
            "identifiers": {"user_id": "u1"}}),
        ev(4, user_id="u1", at=t + timedelta(days=2), event="Product Returned", properties={"total": 20}),
        ev(5, user_id="u1", at=t + timedelta(days=3), event="Case Opened",
           properties={"case_id": "k1", "repair": True, "product_id": "stove-9"}),
        ev(6, user_id="u1", at=t + timedelta(days=3), event="Case Opened", properties={"case_id": "k2"}),
        ev(7, user_id="u1", at=t + timedelta(days=4), event="Case Closed", properties={"case_id": "k2"}),
        ev(8, kind="record", user_id=None, at=t + timedelta(days=4), properties={
            "record_type": "case", "row_key": "k3", "status": "Closed", "identifiers": {"user_id": "u1"}}),
    ])
    stats = p.to_json(p.profiles()[0], t)["stats"]
    assert stats["orders"] == {"count": 2, "revenue": 150.0, "average_value": 75.0,
                               "last_order_at": "2026-11-07T00:00:00.000000Z", "last_order_id": "o2",
                               "categories": {"stoves": 1, "tents": 2}}
    assert stats["returns"]["count"] == 1 and stats["returns"]["amount"] == 20.0
    assert stats["cases"] == {"open": ["k1"], "open_count": 1, "closed_count": 2}
    assert stats["products_in_repair"] == ["stove-9"]


def test_sessions_by_inactivity_and_by_session_id() -> None:
    t = datetime(2026, 11, 7, 10, tzinfo=UTC)
    gaps = [0, 10, 39, 70, 71]  # minutes: 0-10-39 one session (29 min gap ok), 70 new, 71 same
    p, _ = project([ev(i, at=t + timedelta(minutes=m)) for i, m in enumerate(gaps, 1)])
    assert p.to_json(p.profiles()[0], t)["stats"]["sessions"] == 2
    p2, _ = project([ev(i, at=t + timedelta(minutes=i), context={"sessionId": f"s{i // 2}"}) for i in range(1, 6)])
    assert p2.to_json(p2.profiles()[0], t)["stats"]["sessions"] == 3


def test_touchpoints_channel_rules_and_hour_of_week() -> None:
    # 2026-11-09 is a Monday; 23:30 UTC is Tuesday 00:30 in Berlin.
    t = datetime(2026, 11, 9, 23, 30, tzinfo=UTC)
    cfg = ProfileConfig(source_channels={"pos": "store"})
    p, _ = project([
        ev(1, at=t, context={"library": {"name": "analytics.js"}, "campaign": {"medium": "email"}}),
        ev(2, at=t, context={"channel": "mobile", "timezone": "Europe/Berlin"}),
        ev(3, at=t, source="pos", context={"channel": "server"}),
        ev(4, at=t, source="call_center"),
        ev(5, at=t, source="somewhere", context={"timezone": "Not/AZone"}),
    ], cfg)
    tps = p.to_json(p.profiles()[0], t)["touchpoints"]
    assert {ch: tp["count"] for ch, tp in tps.items()} == {
        "email": 1, "app": 1, "store": 1, "call_center": 1, "other": 1}
    assert tps["app"]["hours"].index(1) == 24  # Tuesday 00:00 in Berlin
    assert tps["other"]["hours"].index(1) == 23  # invalid zone: UTC, Monday 23:00
    assert all(len(tp["hours"]) == 168 and sum(tp["hours"]) == 1 for tp in tps.values())


def test_interest_keys_weights_and_dwell() -> None:
    t = datetime(2026, 11, 8, tzinfo=UTC)
    cfg = ProfileConfig(taxonomy=TAXONOMY, weights={"Product Viewed": 1.0, "page": 0.5, "Product Liked": 2.0})
    p, _ = project([
        ev(1, at=t, event="Product Viewed", properties={"category": "Outdoor Gear", "dwell_seconds": 60}),
        ev(2, at=t, kind="page", context={"page": {"path": "/trips/krabi/hiking"}}),
        ev(3, at=t, event="Product Liked", properties={"interests": ["destination:krabi", "Sailing"]}),
        ev(4, at=t, event="Order Refunded", properties={"category": "ignored"}),
        ev(5, at=t, kind="page", properties={"url": "https://x.com/new-york/deals?krabi=1"}),
    ], cfg)
    got = {i["key"]: i["score"] for i in p.to_json(p.profiles()[0], t)["interests"]}
    assert got == {"category:outdoor-gear": 2.0, "destination:krabi": 2.5, "category:outdoor": 0.5,
                   "topic:sailing": 2.0, "destination:new-york": 0.5}  # the URL's path only, not its query


def test_profile_queries_and_errors() -> None:
    p, _ = project([ev(1, user_id="u1")])
    pid = p.profiles()[0]
    assert p.profile(pid) is p.profile_for("user_id:u1")
    assert p.profile("p_unknown") is None
    assert p.profile_for("email:nobody@x.com") is None
    with pytest.raises(TaktError, match="no profile"):
        p.to_json("p_unknown", NOV_NOW)
    with pytest.raises(TaktError):
        p.profile_for("garbage")


def test_snapshot_restore_then_continue_equals_straight_run() -> None:
    events = [*krabi_then_new_york(), ev(6, user_id="u9", anonymous_id="a", message_id="x6"),
              ev(7, user_id=None, anonymous_id="b", message_id="x7"),
              ev(8, user_id="u9", anonymous_id="b", message_id="x8")]
    all_stored = stored(events)
    straight = Projector(CONFIG)
    straight.apply(all_stored)
    lookup = MemoryEvents()
    first = Projector(CONFIG, lookup)
    first.apply(all_stored[:6])
    import orjson

    snap = orjson.loads(orjson.dumps(first.snapshot()))
    resumed = Projector.restore(snap, CONFIG, lookup)
    resumed.apply(all_stored[6:])
    assert resumed.snapshot() == straight.snapshot()


def test_times_without_a_zone_are_utc_never_local() -> None:
    naive = datetime(2026, 11, 9, 23, 30)  # a Monday
    p, _ = project([ev(1, at=naive, event="Product Viewed", properties={"category": "Tents"})])
    view = p.to_json(p.profiles()[0], datetime(2026, 11, 9, 23, 30) + timedelta(days=30))
    assert view["stats"]["first_seen"] == "2026-11-09T23:30:00.000000Z"
    assert view["touchpoints"]["web"]["hours"].index(1) == 23
    assert view["interests"] == [{"key": "category:tents", "score": 0.5}]


def test_an_identifier_refused_by_a_guard_is_a_profile_without_events() -> None:
    p, _ = project([
        ev(1, kind="identify", user_id="u1", traits={"crm_id": "C1"}),
        ev(2, kind="identify", user_id="u1", traits={"crm_id": "C2"}),
    ])
    c2 = p.profile_for("crm_id:C2")
    assert c2 is not None and c2.events == []
    assert c2.id in p.profiles()
    view = p.to_json(c2.id, NOV_NOW)
    assert view["identifiers"] == ["crm_id:C2"]
    assert [(c["type"], sorted(c["values"])) for c in view["conflicts"]] == [("crm_id", ["C1", "C2"])]
    assert view["stats"]["events"] == 0
    u1 = p.profile_for("user_id:u1")
    assert u1 is not None and len(u1.events) == 2
