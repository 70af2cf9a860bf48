"""The profile story end to end through the HTTP API: anonymous browsing, logins on two devices, a CRM
import with a third-party phone number, and Krabi fading below New York with an `interest_shifted` event."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from takt.api.app import create_app
from takt.clock import FixedClock
from takt.ingest.records import ImportOptions, import_file
from takt.settings import load
from takt.storage.duckdb import DuckDBStorage

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[TestClient, DuckDBStorage, dict[str, str]]]:
    storage = DuckDBStorage(tmp_path / "t.duckdb")
    keys = {}
    for kind, name, prov in [("write", "website", "customer_provided"), ("write", "app", "customer_provided"),
                             ("read", "reader", None), ("write", "other", "observed")]:
        _, secret = storage.keys.create(kind, name, None, prov, now=NOW)
        keys[name] = secret.reveal()
    app = create_app(storage, load(None, env={}), FixedClock(NOW))
    with TestClient(app) as client:
        yield client, storage, keys
    storage.close()


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def search(i: int, anon: str, user: str | None, when: str, key: str) -> dict[str, object]:
    item: dict[str, object] = {"type": "track", "event": "Products Searched", "anonymousId": anon,
                               "messageId": f"s-{i}", "timestamp": when,
                               "properties": {"query": key.split(":")[1], "interests": [key]}}
    if user:
        item["userId"] = user
    return item


def test_one_person_with_provenance_and_fading_interests(world, tmp_path: Path) -> None:
    client, storage, keys = world
    web, app = basic(keys["website"]), basic(keys["app"])
    # February: anonymous browsing on the laptop, all about Krabi; then login on the laptop
    batch = [search(i, "laptop-1", None, f"2026-02-0{i + 1}T10:00:00Z", "destination:krabi") for i in range(5)]
    batch.append({"type": "identify", "anonymousId": "laptop-1", "userId": "ann-1", "messageId": "id-1",
                  "timestamp": "2026-02-06T10:00:00Z", "traits": {"email": "Ann@Example.com", "first_name": "Ann"}})
    assert client.post("/v1/batch", headers=web, json={"batch": batch}).status_code == 200
    # later, on her phone's app: anonymous at first, then logged in (two profiles merge)
    r = client.post("/v1/screen", headers=app, json={"anonymousId": "phone-7", "name": "Home", "messageId": "sc-1",
                                                     "timestamp": "2026-03-01T07:59:00Z"})
    assert r.status_code == 200
    r = client.post("/v1/identify", headers=app, json={"anonymousId": "phone-7", "userId": "ann-1",
                                                       "messageId": "id-2", "timestamp": "2026-03-01T08:00:00Z"})
    assert r.status_code == 200
    # the CRM knows her by crm id and email; an enrichment vendor adds a phone she never gave
    crm = tmp_path / "crm.csv"
    crm.write_text("crm_id,email,first_name,country\nC1,ann@example.com,Ann,DE\n")
    vendor = tmp_path / "vendor.csv"
    vendor.write_text("crm_id,email,phone\nC1,ann@example.com,+49 151 23456789\n")
    s1 = import_file(storage.log, crm, "customers", ImportOptions(source="crm"), now=NOW)
    s2 = import_file(storage.log, vendor, "customers",
                     ImportOptions(source="enrichment-vendor", provenance="third_party", customer_given=False),
                     now=NOW)
    assert s1.imported == 1 and s2.imported == 1
    # November: New York, on the phone
    ny = [search(10 + i, "phone-7", "ann-1", f"2026-11-1{i}T19:00:00Z", "destination:new-york") for i in range(5)]
    assert client.post("/v1/batch", headers=app, json={"batch": ny}).status_code == 200
    client.app.state.ctx.extras["profiles"].catch_up()

    reader = {"Authorization": f"Bearer {keys['reader']}"}
    r = client.get("/v1/profiles", params={"identifier": "email:ann@example.com"}, headers=reader)
    assert r.status_code == 200, r.text
    p = r.json()
    # one person, reachable by every identifier
    for ident in ("anonymous_id:laptop-1", "anonymous_id:phone-7", "user_id:ann-1", "crm_id:C1"):
        assert ident in p["identifiers"], ident
        assert client.get("/v1/profiles", params={"identifier": ident}, headers=reader).json()["id"] == p["id"]
    assert p["merges"], "the stitching is recorded with its causes"
    # provenance of traits and contact points
    assert p["traits"]["first_name"]["provenance"] == "customer_provided"
    assert p["traits"]["country"]["provenance"] == "crm_import"
    by_value = {c["value"]: c for c in p["contact_points"]}
    assert by_value["ann@example.com"]["provenance"] == "customer_provided"
    assert by_value["+4915123456789"]["provenance"] == "third_party"
    assert by_value["+4915123456789"]["customer_given"] is False
    # interests: New York on top, Krabi faded
    interests = p["interests"]
    keys_in_order = [i["key"] for i in interests]
    assert keys_in_order[0] == "destination:new-york"
    krabi = next(i for i in interests if i["key"] == "destination:krabi")
    assert krabi["score"] < interests[0]["score"] / 10
    # the shift is in the log exactly once, even after a rebuild
    shifted = [e for e in storage.log.iter() if e.event.kind == "interest_shifted"]
    assert len(shifted) >= 1
    assert shifted[-1].event.properties["to"] == "destination:new-york"
    runner = client.app.state.ctx.extras["profiles"]
    before = storage.log.count()
    runner.rebuild()
    runner.catch_up()
    assert storage.log.count() == before
    assert runner.profile_json(p["id"], NOW)["interests"] == interests
    # the timeline pages through every touchpoint's events in event time order, newest first (the CRM import
    # came last into the log but its row sits at its own time)
    t = client.get(f"/v1/profiles/{p['id']}/timeline", params={"limit": 3}, headers=reader).json()
    assert len(t["events"]) == 3 and t["next"]
    times = [e["timestamp"] for e in t["events"]]
    assert times == sorted(times, reverse=True)


def test_profile_endpoints_need_a_read_key_and_404_unknown(world) -> None:
    client, _, keys = world
    assert client.get("/v1/profiles/p_x").status_code == 401
    assert client.get("/v1/profiles/p_x", headers={"Authorization": f"Bearer {keys['website']}"}).status_code == 403
    r = client.get("/v1/profiles/p_nope", headers={"Authorization": f"Bearer {keys['reader']}"})
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = client.get("/v1/profiles", params={"identifier": "email:nobody@example.com"},
                   headers={"Authorization": f"Bearer {keys['reader']}"})
    assert r.status_code == 404


def test_live_profile_follows_ingest(world) -> None:
    """Without any manual catch-up, an acknowledged event becomes visible in the profile."""
    import time

    client, _, keys = world
    client.post("/v1/identify", headers=basic(keys["website"]),
                json={"userId": "bob", "traits": {"email": "bob@example.com"}, "messageId": "b1"})
    reader = {"Authorization": f"Bearer {keys['reader']}"}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = client.get("/v1/profiles", params={"identifier": "user_id:bob"}, headers=reader)
        if r.status_code == 200:
            break
        time.sleep(0.02)
    assert r.status_code == 200
    assert r.json()["traits"]["email"]["value"] == "bob@example.com"
