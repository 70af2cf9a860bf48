"""The suppression list through HTTP: an unsubscribed address stays blocked whatever re-imports, consent imports
and merges say; erased addresses stay blocked when a stale list brings them back; admins list hashes only."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from takt.api.app import create_app
from takt.clock import FixedClock
from takt.ingest.records import ImportOptions, import_file
from takt.policy.suppression_store import suppress
from takt.settings import load
from takt.storage.base import Storage
from tests.conftest import BACKENDS, open_backend

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


class World:
    def __init__(self, client: TestClient, storage: Storage, keys: dict[str, str], tmp: Path):
        self.client, self.storage, self.keys, self.tmp = client, storage, keys, tmp

    def basic(self, name: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{self.keys[name]}:".encode()).decode()}

    def bearer(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[name]}"}

    def send(self, key: str, path: str, body: dict[str, Any]) -> None:
        r = self.client.post(path, headers=self.basic(key), json=body)
        assert r.status_code == 200, r.text

    def grant(self, key: str, user: str, mid: str, channel: str = "email") -> None:
        self.send(key, "/v1/track", {"userId": user, "event": "Consent Updated", "messageId": mid,
                                     "timestamp": "2026-11-19T12:00:00Z",
                                     "properties": {"purpose": "marketing", "channel": channel, "status": "granted",
                                                    "evidence": {"method": "double_opt_in"}}})

    def decide(self, profile: str, intent: str = "marketing", channels: tuple[str, ...] = ("email",)) -> dict[str, Any]:
        r = self.client.post("/v1/decide", headers=self.bearer("admin"),
                             json={"profile": profile, "intent": intent, "channels": list(channels)})
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    def catch_up(self) -> None:
        self.client.app.state.ctx.extras["profiles"].catch_up()  # type: ignore[attr-defined]

    def crm_import(self, rows: str) -> None:
        path = self.tmp / "old-crm.csv"
        path.write_text(rows)
        summary = import_file(self.storage.log, path, "customers",
                              ImportOptions(source="old-crm", provenance="crm_import", customer_given=True,
                                            mapping={"row_key": "crm_id"}), now=NOW)
        assert summary.imported >= 1
        self.catch_up()


@pytest.fixture(params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    storage = open_backend(request.param, tmp_path, request)
    keys = {}
    for kind, name, prov in (("write", "website", "customer_provided"), ("write", "crm", "crm_import"),
                             ("read", "reader", None), ("admin", "admin", None)):
        _, secret = storage.keys.create(kind, name, None, prov, now=NOW)
        keys[name] = secret.reveal()
    with TestClient(create_app(storage, load(None, env={}), FixedClock(NOW))) as client:
        yield World(client, storage, keys, tmp_path)
    storage.close()


def codes(d: dict[str, Any], channel: str = "email") -> set[str]:
    return {r["code"] for r in d["rejected"].get(channel, [])} | {r["code"] for r in d["reasons"]}


def test_unsubscribed_address_stays_suppressed_through_reimport_and_merge(world: World) -> None:
    world.send("website", "/v1/identify", {"userId": "ann", "traits": {"email": "ann@example.com"},
                                           "messageId": "i1"})
    world.grant("website", "ann", "g1")
    assert world.decide("user_id:ann")["allowed"] is True
    pid = world.client.get("/v1/profiles", params={"identifier": "user_id:ann"},
                           headers=world.bearer("admin")).json()["id"]
    link = world.client.get(f"/v1/profiles/{pid}/unsubscribe-link",
                            params={"channel": "email", "contact_point": "ann@example.com"},
                            headers=world.bearer("admin")).json()
    assert world.client.post(link["url"].replace("http://testserver", "")).status_code == 200

    d = world.decide("user_id:ann")
    assert d["allowed"] is False and {"suppressed", "withdrawn"} <= codes(d)
    # an unsubscribe from a newsletter stops marketing only: order confirmations and service notices still go
    for intent in ("transactional", "service"):
        d = world.decide("user_id:ann", intent=intent)
        assert d["allowed"] is True and d["contact_point"] == "ann@example.com", (intent, d)

    # the old CRM list comes back: the address marked customer-given, and the CRM says she granted
    world.crm_import("crm_id,email,first_name\nC-1,ann@example.com,Ann\n")
    world.grant("crm", "ann", "crm-g1")
    r = world.client.post("/v1/consent", headers=world.bearer("admin"), json={
        "profile": "user_id:ann", "purpose": "marketing", "channel": "email", "contact_point": "ann@example.com",
        "status": "granted", "evidence": {"method": "import"}})
    assert r.status_code == 200
    d = world.decide("user_id:ann")
    assert d["allowed"] is False and "suppressed" in codes(d)

    # a merge with another profile (her phone-only app profile) keeps it suppressed
    world.send("website", "/v1/identify", {"anonymousId": "app-7", "traits": {"phone": "+49 151 1234567"},
                                           "messageId": "i2"})
    world.send("website", "/v1/identify", {"userId": "ann", "anonymousId": "app-7", "messageId": "i3"})
    world.catch_up()
    merged = world.client.get("/v1/profiles", params={"identifier": "anonymous_id:app-7"},
                              headers=world.bearer("admin")).json()
    assert merged["id"] == world.client.get("/v1/profiles", params={"identifier": "user_id:ann"},
                                            headers=world.bearer("admin")).json()["id"]
    d = world.decide("anonymous_id:app-7", channels=("email",))
    assert d["allowed"] is False and "suppressed" in codes(d)

    # the admin view: hashes only, and a check by address
    listed = world.client.get("/v1/suppression", headers=world.bearer("admin")).json()
    assert listed["total"] == 1
    (entry,) = listed["entries"]
    assert entry["reason"] == "unsubscribe" and entry["kind"] == "email" and entry["scope"] == "marketing"
    assert "ann" not in str({k: v for k, v in entry.items() if k != "hash"}) and len(entry["hash"]) == 64
    checked = world.client.post("/v1/suppression/check", headers=world.bearer("admin"),
                                json={"kind": "email", "value": "ANN@example.com"}).json()
    assert checked["suppressed"] is True and checked["entries"][0]["hash"] == entry["hash"]
    assert checked["entries"][0]["scope"] == "marketing"
    other = world.client.post("/v1/suppression/check", headers=world.bearer("admin"),
                              json={"kind": "email", "value": "bob@example.com"}).json()
    assert other == {"suppressed": False, "entries": []}


def test_an_erased_address_brought_back_by_a_stale_list_stays_blocked(world: World) -> None:
    # the privacy engine erased Cem and kept only the hash of his address
    suppress(world.storage, "email", "cem@example.com", "erasure", NOW, source="privacy")
    world.crm_import("crm_id,email,first_name\nC-9,cem@example.com,Cem\n")
    world.grant("crm", "C-9-unused", "crm-g9")  # noise: another person's grant
    r = world.client.post("/v1/consent", headers=world.bearer("admin"), json={
        "profile": "email:cem@example.com", "purpose": "marketing", "channel": "email", "status": "granted",
        "evidence": {"method": "double_opt_in"}})
    assert r.status_code == 200 and r.json()["applied"] is True  # the ledger alone would allow it ...
    d = world.decide("email:cem@example.com")
    assert d["allowed"] is False and codes(d) >= {"suppressed"}  # ... the suppression list does not
    assert [r["code"] for r in d["rejected"]["email"]] == ["suppressed"]


def test_complaints_and_admin_entries(world: World) -> None:
    world.send("website", "/v1/identify", {"userId": "dan", "traits": {"email": "dan@example.com"},
                                           "messageId": "i1"})
    world.grant("website", "dan", "g1")
    r = world.client.post("/v1/messages", headers=world.bearer("admin"), json={
        "profile": "user_id:dan", "message_id": "m1", "status": "complained", "channel": "email",
        "contact_point": "dan@example.com", "intent": "marketing", "at": "2026-01-01T10:00:00Z"})
    assert r.status_code == 200
    # a complaint stops marketing to the address (and starts the cooling-off), not service messages
    d = world.decide("user_id:dan")
    assert d["allowed"] is False and "suppressed" in codes(d)
    assert world.decide("user_id:dan", intent="service")["allowed"] is True
    r = world.client.post("/v1/suppression", headers=world.bearer("admin"),
                          json={"kind": "phone", "value": "+49 30 1234567"})
    assert r.status_code == 200 and r.json()["entry"]["reason"] == "admin"
    assert r.json()["entry"]["scope"] == "all"
    assert r.json()["entry"]["source"] == "admin:admin"
    reasons = sorted(e["reason"] for e in world.client.get("/v1/suppression", headers=world.bearer("admin"))
                     .json()["entries"])
    assert reasons == ["admin", "complaint"]
    page = world.client.get("/v1/suppression", params={"limit": 1}, headers=world.bearer("admin")).json()
    rest = world.client.get("/v1/suppression", params={"after": page["next_after"]},
                            headers=world.bearer("admin")).json()
    assert len(page["entries"]) == 1 and len(rest["entries"]) == 1 and rest["next_after"] is None
    assert {page["entries"][0]["hash"], rest["entries"][0]["hash"]} == {e["hash"] for e in world.client.get(
        "/v1/suppression", headers=world.bearer("admin")).json()["entries"]}


@pytest.mark.parametrize("body,field", [({"kind": "fax", "value": "1"}, "kind"), ({"kind": "email"}, "value"),
                                        ({"kind": "email", "value": "a@b.c", "reason": "bored"}, "reason"),
                                        ({"kind": "email", "value": "a@b.c", "extra": 1}, "extra")])
def test_bad_admin_bodies_name_the_field(world: World, body: dict[str, Any], field: str) -> None:
    r = world.client.post("/v1/suppression", headers=world.bearer("admin"), json=body)
    assert r.status_code == 400
    assert field in {e["field"] for e in r.json()["errors"]}
    assert world.client.get("/v1/suppression", headers=world.bearer("admin")).json()["total"] == 0


def test_only_admins_see_the_list(world: World) -> None:
    assert world.client.get("/v1/suppression", headers=world.bearer("reader")).status_code == 403
    assert world.client.get("/v1/suppression").status_code == 401
    assert world.client.get("/v1/suppression", params={"after": "zz"},
                            headers=world.bearer("admin")).status_code == 400


def test_only_the_customer_subscribing_again_lifts_an_unsubscribe(world: World) -> None:
    world.send("website", "/v1/identify", {"userId": "fay", "traits": {"email": "fay@example.com"},
                                           "messageId": "i1"})
    world.grant("website", "fay", "g1")
    pid = world.client.get("/v1/profiles", params={"identifier": "user_id:fay"},
                           headers=world.bearer("admin")).json()["id"]
    url = world.client.get(f"/v1/profiles/{pid}/unsubscribe-link", params={"contact_point": "fay@example.com"},
                           headers=world.bearer("admin")).json()["url"]
    world.client.post(url.replace("http://testserver", ""))
    # an operator's double-opt-in grant does not lift it (nor the withdrawal)
    world.client.post("/v1/consent", headers=world.bearer("admin"), json={
        "profile": "user_id:fay", "purpose": "marketing", "channel": "email", "status": "granted",
        "evidence": {"method": "double_opt_in"}})
    assert "suppressed" in codes(world.decide("user_id:fay"))
    # a single opt-in by the customer lifts the withdrawal but not the suppression
    world.send("website", "/v1/track", {"userId": "fay", "event": "Consent Updated", "messageId": "g2",
                                        "timestamp": "2026-11-20T10:00:00Z",
                                        "properties": {"purpose": "marketing", "channel": "email",
                                                       "status": "granted", "evidence": {"method": "web_form"}}})
    d = world.decide("user_id:fay")
    assert d["allowed"] is False and "suppressed" in codes(d) and "withdrawn" not in codes(d)
    # she subscribes again herself and confirms by double opt-in: the unsubscribe entry no longer blocks
    world.send("website", "/v1/track", {"userId": "fay", "event": "Consent Updated", "messageId": "g3",
                                        "timestamp": "2026-11-20T10:05:00Z",
                                        "properties": {"purpose": "marketing", "channel": "email",
                                                       "status": "granted", "evidence": {"method": "double_opt_in"}}})
    d = world.decide("user_id:fay")
    assert d["allowed"] is True, d
    # the entry stays on the list (hashes are never removed); a complaint is never lifted
    assert world.client.post("/v1/suppression/check", headers=world.bearer("admin"),
                             json={"kind": "email", "value": "fay@example.com"}).json()["suppressed"] is True
    world.client.post("/v1/messages", headers=world.bearer("admin"), json={
        "profile": "user_id:fay", "message_id": "m9", "status": "complained", "channel": "email",
        "contact_point": "fay@example.com", "intent": "marketing", "at": "2026-11-20T10:00:00Z"})
    world.send("website", "/v1/track", {"userId": "fay", "event": "Consent Updated", "messageId": "g4",
                                        "timestamp": "2026-11-20T10:06:00Z",
                                        "properties": {"purpose": "marketing", "channel": "email",
                                                       "status": "granted", "evidence": {"method": "double_opt_in"}}})
    assert "suppressed" in codes(world.decide("user_id:fay"))
    assert world.decide("user_id:fay", intent="service")["allowed"] is True


def test_a_hard_bounce_blocks_every_purpose(world: World) -> None:
    world.send("website", "/v1/identify", {"userId": "hal", "traits": {"email": "hal@example.com"},
                                           "messageId": "i1"})
    world.grant("website", "hal", "g1")
    assert world.decide("user_id:hal", intent="transactional")["allowed"] is True
    r = world.client.post("/v1/messages", headers=world.bearer("admin"), json={
        "profile": "user_id:hal", "message_id": "m1", "status": "bounced", "channel": "email",
        "contact_point": "hal@example.com", "intent": "transactional", "at": "2026-11-20T09:00:00Z"})
    assert r.status_code == 200
    for intent in ("marketing", "transactional", "service"):
        d = world.decide("user_id:hal", intent=intent)
        assert d["allowed"] is False and "suppressed" in codes(d), (intent, d)
    checked = world.client.post("/v1/suppression/check", headers=world.bearer("admin"),
                                json={"kind": "email", "value": "hal@example.com"}).json()
    assert [(e["reason"], e["scope"]) for e in checked["entries"]] == [("hard_bounce", "all")]
