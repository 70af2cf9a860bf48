from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from takt.errors import SettingsError
from takt.events.model import StoredEvent
from takt.profiles.config import ProfileConfig
from takt.profiles.projector import Projector
from takt.settings import load
from tests.factories import ev
from tests.profiles.helpers import project

T = datetime(2026, 11, 10, 12, tzinfo=UTC)


def record(i: int, record_type: str, **props: object) -> object:
    return ev(i, kind="record", user_id=None, at=T + timedelta(hours=i), provenance="crm_import", source="crm",
              properties={"record_type": record_type, **props})


def test_import_shaped_records_fill_the_profile() -> None:
    p, _ = project([
        record(1, "customer", row_key="C1", identifiers={"crm_id": "C1", "email": "ada@x.com"},
               traits={"first_name": "Ada"}, contact_points_customer_given=True,
               postal_address={"street": "Hauptstr. 1", "postal_code": "10115", "city": "Berlin",
                               "country": "DE"}),
        record(2, "order", row_key="o1", identifiers={"crm_id": "C1"}, order_id="o1", revenue=80.0,
               currency="EUR", products=[{"product_id": "p1", "category": "Tents", "price": 80.0, "quantity": 1}],
               categories=["Tents"], store="Berlin Mitte", status="completed"),
        record(3, "order", row_key="o2", identifiers={"crm_id": "C1"}, order_id="o2", revenue=30.0,
               status="refunded"),
        record(4, "order", row_key="o3", identifiers={"crm_id": "C1"}, order_id="o3", revenue=99.0,
               status="cancelled"),
        record(5, "case", row_key="k1", identifiers={"email": "ADA@x.com"}, case_id="k1", status="open",
               subject="Stove broken", channel="phone", product_id="stove-1", in_repair=True),
        record(6, "product", row_key="p1", product_id="p1", name="Tent", category="Tents"),
    ])
    assert len(p.profiles()) == 1  # the product row names no person
    view = p.to_json(p.profiles()[0], T)
    assert view["identifiers"] == ["crm_id:C1", "email:ada@x.com"]
    stats = view["stats"]
    assert (stats["orders"]["count"], stats["orders"]["revenue"], stats["orders"]["categories"]) == (
        1, 80.0, {"tents": 1})
    assert (stats["returns"]["count"], stats["returns"]["amount"]) == (1, 30.0)
    assert stats["products_in_repair"] == ["stove-1"]
    assert stats["cases"]["open"] == ["k1"]
    assert {ch: tp["count"] for ch, tp in view["touchpoints"].items()} == {"store": 1, "call_center": 1}
    contacts = {c["type"]: c for c in view["contact_points"]}
    assert contacts["address"]["value"]["city"] == "Berlin"
    assert contacts["address"]["customer_given"] is True
    assert contacts["email"]["provenance"] == "crm_import"
    assert view["traits"]["first_name"]["source"] == "crm"
    assert stats["event_counts"] == {"record:case": 1, "record:customer": 1, "record:order": 3}


def test_unmerge_by_merge_id_through_the_projector() -> None:
    p, _ = project([
        ev(1, user_id=None, anonymous_id="x", event="Order Completed", properties={"order_id": "a"}),
        ev(2, user_id=None, anonymous_id="y", event="Order Completed", properties={"order_id": "b"}),
        ev(3, user_id="u1", anonymous_id="y", kind="identify"),
        ev(4, user_id="u1", anonymous_id="x", kind="identify"),
    ])
    (pid,) = p.profiles()
    view = p.to_json(pid, T)
    assert view["stats"]["orders"]["count"] == 2
    (merge,) = view["merges"]
    p.take_changes()
    p.apply([StoredEvent(5, ev(5, kind="identity.unmerge", user_id=None, source="admin",
                               properties={"merge_id": merge["id"]}))])
    assert len(p.profiles()) == 2
    x, u1 = p.profile_for("anonymous_id:x"), p.profile_for("user_id:u1")
    assert x is not None and u1 is not None and x.id != u1.id
    assert u1 is p.profile_for("anonymous_id:y")
    # Events go to their anchor's profile: event 4 names user_id:u1, which outranks anonymous_id:x.
    assert x.positions == [1]  # m-1
    assert u1.positions == [2, 3, 4]  # m-2, m-3, m-4
    assert p.to_json(x.id, T)["stats"]["orders"]["count"] == 1
    changes = p.take_changes()
    assert sorted(changes.profiles) == sorted([x.id, u1.id])


def test_settings_resolve_into_a_profile_config() -> None:
    s = load(None, env={"TAKT_INTERESTS__TAXONOMY": '{"Krabi": "destination:krabi"}',
                        "TAKT_PROFILES__SESSION_MINUTES": "45"})
    cfg = ProfileConfig.from_settings(s)
    assert cfg.session_minutes == 45
    assert cfg.taxonomy_terms == (("krabi", "destination:krabi"),)
    assert cfg.half_life_seconds("destination:krabi") == 21 * 86400
    assert cfg.half_life_seconds("category:x") == 30 * 86400
    with pytest.raises(SettingsError, match="taxonomy"):
        load(None, env={"TAKT_INTERESTS__TAXONOMY": '{"krabi": "no-family"}'})
    with pytest.raises(SettingsError, match="trait_rank"):
        load(None, env={"TAKT_PROFILES__TRAIT_RANK": '["observed"]'})
    with pytest.raises(SettingsError, match="half_life"):
        load(None, env={"TAKT_INTERESTS__HALF_LIFE_DAYS": '{"default": 0}'})
    with pytest.raises(SettingsError, match="weights"):
        ProfileConfig(weights={"Product Viewed": -1})


def test_restored_projector_rejects_unknown_snapshot_versions() -> None:
    p = Projector()
    snap = p.snapshot()
    snap["version"] = 99
    with pytest.raises(ValueError, match="version"):
        Projector.restore(snap)


def test_opened_and_clicked_messages_are_touches_on_their_channel() -> None:
    def message(i: int, status: str, channel: str) -> object:
        return ev(i, kind="message", at=T, source="takt", properties={
            "message_id": "msg_1", "status": status, "channel": channel, "intent": "marketing"})

    p, _ = project([message(1, "sent", "email"), message(2, "delivered", "email"), message(3, "opened", "email"),
                    message(4, "clicked", "email"), message(5, "clicked", "sms")])
    view = p.to_json(p.profiles()[0], T)
    assert {ch: tp["count"] for ch, tp in view["touchpoints"].items()} == {"email": 2, "sms": 1}
    assert view["stats"]["sessions"] == 0
    assert view["stats"]["event_counts"] == {"message": 5}
