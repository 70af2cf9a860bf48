"""Contact policy through the HTTP API: consent recording, the decision and message lifecycle events, told as
stories of one customer each (the clock is fixed; every decision names its time)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from takt.api.app import create_app
from takt.clock import FixedClock
from takt.ingest.records import ImportOptions, import_file
from takt.settings import load
from takt.storage.duckdb import DuckDBStorage

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
AT = "2026-11-20T10:00:00Z"


@dataclass
class World:
    client: TestClient
    storage: DuckDBStorage
    keys: dict[str, str]
    tmp: Path
    app: Starlette

    def catch_up(self) -> None:
        """For data written to the log directly (a file import), not through the API."""
        self.app.state.ctx.extras["profiles"].catch_up()

    # ---- credentials ----
    def basic(self, name: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{self.keys[name]}:".encode()).decode()}

    def bearer(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[name]}"}

    # ---- calls ----
    def send(self, key: str, path: str, body: dict[str, Any]) -> None:
        r = self.client.post(path, headers=self.basic(key), json=body)
        assert r.status_code == 200, r.text

    def consent_updated(self, key: str, user: str, mid: str, **props: Any) -> None:
        """The customer's own session (or whatever source ``key`` is) sends a ``Consent Updated`` call, now
        (consent folds in the order the customer acted: a call dated before an operator's change comes first)."""
        self.send(key, "/v1/track", {"userId": user, "event": "Consent Updated", "messageId": mid,
                                     "properties": props})

    def admin_consent(self, expect: int = 200, headers: dict[str, str] | None = None,
                      **body: Any) -> dict[str, Any]:
        r = self.client.post("/v1/consent", headers={**self.bearer("admin"), **(headers or {})}, json=body)
        assert r.status_code == expect, r.text
        return r.json()  # type: ignore[no-any-return]

    def decide(self, profile: str, channels: list[str], intent: str = "marketing", at: str = AT,
               key: str = "reader") -> dict[str, Any]:
        r = self.client.post("/v1/decide", headers=self.bearer(key),
                             json={"profile": profile, "intent": intent, "channels": channels, "at": at})
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    def message(self, expect: int = 200, **body: Any) -> dict[str, Any]:
        r = self.client.post("/v1/messages", headers=self.bearer("admin"), json=body)
        assert r.status_code == expect, r.text
        return r.json()  # type: ignore[no-any-return]

    def events(self, kind: str) -> list[Any]:
        return [e for e in self.storage.log.iter() if e.event.kind == kind]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    storage = DuckDBStorage(tmp_path / "t.duckdb")
    keys = {}
    for kind, name, prov in [("write", "website", "customer_provided"), ("write", "vendor", "third_party"),
                             ("write", "crm", "crm_import"), ("read", "reader", None), ("admin", "ops", None)]:
        _, secret = storage.keys.create(kind, name, None, prov, now=NOW)
        keys[name] = secret.reveal()
    keys["admin"] = keys["ops"]
    app = create_app(storage, load(None, env={}), FixedClock(NOW))
    with TestClient(app) as client:
        yield World(client, storage, keys, tmp_path, app)
    storage.close()


def codes(reasons: list[dict[str, Any]]) -> set[str]:
    return {r["code"] for r in reasons}


DOUBLE_OPT_IN = {"method": "double_opt_in", "notice_version": "2026-03"}


# ---- (a) enrichment vendor ----
def test_story_a_enrichment_vendor_address_is_never_used_for_marketing_even_with_a_grant(world: World) -> None:
    world.send("website", "/v1/identify", {"userId": "ann-a", "messageId": "a-1", "traits": {"first_name": "Ann"}})
    # an enrichment vendor (third-party write key) finds her work address
    world.send("vendor", "/v1/identify", {"userId": "ann-a", "messageId": "v-1",
                                          "traits": {"email": "ann@corp.example"}})
    granted = world.admin_consent(profile="user_id:ann-a", purpose="marketing", channel="email",
                                  contact_point="ann@corp.example", status="granted", evidence=DOUBLE_OPT_IN)
    assert granted["applied"] is True and granted["state"]["status"] == "granted"
    d = world.decide("user_id:ann-a", ["email"])
    assert d["allowed"] is False and d["channel"] is None
    assert "third_party_contact_point" in codes(d["reasons"])
    assert "third_party_contact_point" in codes(d["rejected"]["email"])
    assert all(r["message"] for r in d["reasons"])
    # not even a receipt goes there
    assert world.decide("user_id:ann-a", ["email"], intent="transactional")["allowed"] is False
    # once Ann gives the same address herself, it is hers to be contacted at
    world.send("website", "/v1/identify", {"userId": "ann-a", "messageId": "a-2",
                                           "traits": {"email": "Ann@Corp.example"}})
    d = world.decide("user_id:ann-a", ["email"])
    assert d["allowed"] is True and d["channel"] == "email" and d["contact_point"] == "ann@corp.example"
    assert codes(d["reasons"]) == {"allowed"}


# ---- (b) data broker phone ----
def test_story_b_broker_phone_with_the_field_left_empty_gets_no_phone_marketing(world: World) -> None:
    # Ann registers and leaves the phone field empty
    world.send("website", "/v1/identify", {"userId": "ann-b", "messageId": "b-1",
                                           "traits": {"email": "ann.b@example.com", "phone": ""}})
    # a data broker's file fills it in
    broker = world.tmp / "broker.csv"
    broker.write_text("broker_ref,email,phone\nBR-77,ann.b@example.com,+49 151 23456789\n")
    summary = import_file(world.storage.log, broker, "customers",
                          ImportOptions(source="data-broker", provenance="third_party", customer_given=False,
                                        mapping={"row_key": "broker_ref"}),
                          now=NOW)
    assert summary.imported == 1
    # an operator records a phone and SMS grant anyway
    for channel in ("phone", "sms"):
        world.admin_consent(profile="email:ann.b@example.com", purpose="marketing", channel=channel,
                            status="granted", evidence={"method": "verbal"})
    profile = world.client.get("/v1/profiles", params={"identifier": "email:ann.b@example.com"},
                               headers=world.bearer("reader")).json()
    phones = [c for c in profile["contact_points"] if c["type"] == "phone"]
    assert [(c["value"], c["provenance"]) for c in phones] == [("+4915123456789", "third_party")]
    d = world.decide("email:ann.b@example.com", ["phone", "sms"])
    assert d["allowed"] is False
    for channel in ("phone", "sms"):
        assert "third_party_contact_point" in codes(d["rejected"][channel]), d
    assert world.decide("email:ann.b@example.com", ["phone", "sms"], intent="service")["allowed"] is False


# ---- (c) withdrawal ----
def test_story_c_withdrawn_twice_and_only_the_customer_lifts_it(world: World) -> None:
    world.send("website", "/v1/identify", {"userId": "ann-c", "messageId": "c-1",
                                           "traits": {"email": "ann.c@example.com"}})
    world.consent_updated("website", "ann-c", "cu-1", purpose="marketing", channel="email", status="granted",
                          evidence={"method": "double_opt_in"})
    assert world.decide("user_id:ann-c", ["email"])["allowed"] is True
    # unsubscribe link in the newsletter, then a phone call to the service desk: two withdrawals
    world.consent_updated("website", "ann-c", "cu-2", purpose="marketing", channel="email", status="withdrawn",
                          evidence={"method": "unsubscribe_link"})
    w = world.admin_consent(profile="user_id:ann-c", purpose="marketing", channel="email", status="withdrawn",
                            evidence={"method": "verbal"})
    assert w["applied"] is True and w["state"]["status"] == "withdrawn"
    d = world.decide("user_id:ann-c", ["email"])
    assert d["allowed"] is False and "withdrawn" in codes(d["reasons"])
    # an operator's re-grant does not lift it ...
    g = world.admin_consent(profile="user_id:ann-c", purpose="marketing", channel="email", status="granted",
                            evidence=DOUBLE_OPT_IN)
    assert g["applied"] is False and "only the customer" in g["note"]
    assert g["state"]["status"] == "withdrawn"
    # ... nor does a CRM import claiming the customer granted it
    world.consent_updated("crm", "ann-c", "crm-1", purpose="marketing", channel="email", status="granted",
                          evidence={"method": "double_opt_in"})
    d = world.decide("user_id:ann-c", ["email"])
    assert d["allowed"] is False and "withdrawn" in codes(d["reasons"])
    history = world.client.get("/v1/profiles/user_id:ann-c/consent", headers=world.bearer("reader")).json()
    (email,) = [s for s in history["states"] if s["channel"] == "email"]
    assert email["status"] == "withdrawn"
    steps = [(h["actor"], h["status"], h["applied"]) for h in email["history"]]
    assert steps == [("customer", "granted", True), ("customer", "withdrawn", True), ("admin", "withdrawn", True),
                     ("admin", "granted", False), ("import", "granted", False)]
    # Ann subscribes again herself
    world.consent_updated("website", "ann-c", "cu-3", purpose="marketing", channel="email", status="granted",
                          evidence={"method": "double_opt_in"})
    d = world.decide("user_id:ann-c", ["email"])
    assert d["allowed"] is True and d["contact_point"] == "ann.c@example.com"


# ---- (d) one channel, and the budget ----
def test_story_d_one_channel_per_message_and_the_daily_limit(world: World) -> None:
    world.send("website", "/v1/identify", {
        "userId": "ann-d", "messageId": "d-1",
        "traits": {"email": "ann.d@example.com", "phone": "+49 151 11112222", "instagram": "@ann_d",
                   "address": {"street": "Hauptstr. 1", "postal_code": "10115", "city": "Berlin",
                               "country": "DE"}}})
    world.consent_updated("website", "ann-d", "cu-d", consents=[
        {"purpose": "marketing", "channel": ch, "status": "granted", "evidence": {"method": "double_opt_in"}}
        for ch in ("email", "sms", "phone", "post", "social_dm")])
    five = ["phone", "sms", "post", "social_dm", "email"]
    d = world.decide("user_id:ann-d", five)
    assert d["allowed"] is True and d["channel"] == "email" and d["contact_point"] == "ann.d@example.com"
    assert sorted(d["rejected"]) == sorted(set(five) - {"email"})
    for channel, reasons in d["rejected"].items():
        assert codes(reasons) == {"one_channel_per_message"}, channel
    # the newsletter goes out at 09:00 and is opened
    world.message(profile="user_id:ann-d", message_id="nl-1", status="sent", channel="email",
                  contact_point="ann.d@example.com", campaign="winter", intent="marketing",
                  at="2026-11-20T09:00:00Z")
    world.message(profile="user_id:ann-d", message_id="nl-1", status="opened", channel="email",
                  intent="marketing", at="2026-11-20T09:30:00Z")
    d = world.decide("user_id:ann-d", five)
    assert d["allowed"] is False and "daily_limit" in codes(d["reasons"])
    assert all("daily_limit" in codes(rs) for rs in d["rejected"].values())
    # a receipt is outside the budget; the next morning marketing may go again
    assert world.decide("user_id:ann-d", five, intent="transactional")["allowed"] is True
    assert world.decide("user_id:ann-d", five, at="2026-11-21T09:30:00Z")["allowed"] is True


def test_a_complaint_starts_the_cooling_off(world: World) -> None:
    world.send("website", "/v1/identify", {"userId": "ann-e", "messageId": "e-1",
                                           "traits": {"email": "ann.e@example.com"}})
    world.consent_updated("website", "ann-e", "cu-e", purpose="marketing", channel="email", status="granted",
                          evidence={"method": "double_opt_in"})
    world.message(profile="user_id:ann-e", message_id="m-1", status="complained", channel="email",
                  intent="marketing", at="2026-11-01T10:00:00Z")
    d = world.decide("user_id:ann-e", ["email"])
    assert d["allowed"] is False and "complaint_cooloff" in codes(d["reasons"])
    assert world.decide("user_id:ann-e", ["email"], at="2026-12-05T10:00:00Z")["allowed"] is True


def test_story_merged_people_keep_the_most_restrictive_consent(world: World) -> None:
    """Ann unsubscribes on her tablet before logging in there; on her laptop, logged in, she had subscribed
    later. Once the tablet session is linked to her, the withdrawal stands until she acts again."""
    world.send("website", "/v1/track", {"anonymousId": "tablet-1", "event": "Consent Updated", "messageId": "t-1",
                                        "timestamp": "2026-11-18T08:00:00Z",
                                        "properties": {"purpose": "marketing", "channel": "email",
                                                       "status": "withdrawn"}})
    world.send("website", "/v1/identify", {"userId": "ann-m", "messageId": "m-1",
                                           "traits": {"email": "ann.m@example.com"}})
    world.consent_updated("website", "ann-m", "m-2", purpose="marketing", channel="email", status="granted",
                          evidence={"method": "double_opt_in"})
    assert world.decide("user_id:ann-m", ["email"])["allowed"] is True
    world.send("website", "/v1/identify", {"userId": "ann-m", "anonymousId": "tablet-1", "messageId": "m-3"})
    d = world.decide("user_id:ann-m", ["email"])
    assert d["allowed"] is False and "withdrawn" in codes(d["reasons"]), d
    world.consent_updated("website", "ann-m", "m-4", purpose="marketing", channel="email", status="granted",
                          evidence={"method": "double_opt_in"})
    assert world.decide("user_id:ann-m", ["email"])["allowed"] is True


def test_the_customers_preferred_channel_and_time_zone_count(world: World) -> None:
    world.send("website", "/v1/identify", {
        "userId": "ann-p", "messageId": "p-1",
        "traits": {"email": "ann.p@example.com", "phone": "+49 151 33334444", "preferred_channel": "sms",
                   "timezone": "America/New_York"}})
    world.consent_updated("website", "ann-p", "p-2", consents=[
        {"purpose": "marketing", "channel": ch, "status": "granted", "evidence": {"method": "double_opt_in"}}
        for ch in ("email", "sms")])
    # 15:00 UTC is 10:00 in New York: the stated preference wins over the fixed order
    d = world.decide("user_id:ann-p", ["email", "sms"], at="2026-11-20T15:00:00Z")
    assert d["allowed"] is True and d["channel"] == "sms" and d["contact_point"] == "+4915133334444"
    assert codes(d["rejected"]["email"]) == {"not_preferred_channel"}
    # 10:00 UTC is 05:00 in New York: quiet hours there
    d = world.decide("user_id:ann-p", ["email", "sms"], at="2026-11-20T10:00:00Z")
    assert d["allowed"] is False and "quiet_hours" in codes(d["reasons"])
    assert "America/New_York" in next(r["detail"] for r in d["reasons"] if r["code"] == "quiet_hours")
    # a preference a data vendor claims is not the customer's
    world.send("vendor", "/v1/identify", {"userId": "ann-q", "messageId": "q-0"})
    world.send("website", "/v1/identify", {"userId": "ann-q", "messageId": "q-1",
                                           "traits": {"email": "ann.q@example.com"}})
    world.send("vendor", "/v1/identify", {"userId": "ann-q", "messageId": "q-2",
                                          "traits": {"preferred_channel": "phone"}})
    world.consent_updated("website", "ann-q", "q-3", purpose="marketing", channel="email", status="granted",
                          evidence={"method": "double_opt_in"})
    d = world.decide("user_id:ann-q", ["email", "phone"], at="2026-11-20T15:00:00Z")
    assert d["allowed"] is True and d["channel"] == "email"


# ---- the shell's promises ----
def test_consent_lands_in_a_profile_known_only_by_import_without_touching_its_data(world: World) -> None:
    crm = world.tmp / "crm.csv"
    crm.write_text("crm_id,email,first_name\nC7,bea@example.com,Bea\n")
    assert import_file(world.storage.log, crm, "customers", ImportOptions(source="crm-file"), now=NOW).imported == 1
    world.catch_up()
    reader = world.bearer("reader")
    before = world.client.get("/v1/profiles", params={"identifier": "email:bea@example.com"}, headers=reader).json()
    r = world.admin_consent(profile="email:bea@example.com", purpose="marketing", channel="email",
                            status="granted", evidence=DOUBLE_OPT_IN)
    assert r["profile_id"] == before["id"]
    after = world.client.get(f"/v1/profiles/{before['id']}", headers=reader).json()
    assert after["traits"] == before["traits"] and after["contact_points"] == before["contact_points"]
    assert after["identifiers"] == before["identifiers"]
    history = world.client.get(f"/v1/profiles/{before['id']}/consent", headers=reader).json()
    assert [(s["channel"], s["status"], s["actor"]) for s in history["states"]] == [("email", "granted", "admin")]
    (event,) = world.events("consent")
    assert event.event.properties["actor"] == "admin" and event.event.source == "admin:ops"
    # imported with the customer-given mark: the address may be used
    assert world.decide(before["id"], ["email"])["allowed"] is True


def test_retries_store_once(world: World) -> None:
    world.send("website", "/v1/identify", {"userId": "ann-f", "messageId": "f-1",
                                           "traits": {"email": "ann.f@example.com"}})
    body: dict[str, Any] = {"profile": "user_id:ann-f", "purpose": "marketing", "channel": "email", "status": "withdrawn"}
    first = world.admin_consent(headers={"Idempotency-Key": "req-1"}, **body)
    again = world.admin_consent(headers={"Idempotency-Key": "req-1"}, **body)
    assert first["message_id"] == again["message_id"] and again["duplicate"] is True
    assert len(world.events("consent")) == 1
    # the same key with another body is another change, never silently dropped
    other = world.admin_consent(headers={"Idempotency-Key": "req-1"}, **{**body, "channel": "sms"})
    assert other["message_id"] != first["message_id"] and other["duplicate"] is False
    assert other["state"]["channel"] == "sms" and other["state"]["status"] == "withdrawn"
    assert len(world.events("consent")) == 2
    # without a key, the same change recorded twice is two changes (a withdrawal may be repeated)
    world.admin_consent(**body)
    assert len(world.events("consent")) == 3
    m: dict[str, Any] = {"profile": "user_id:ann-f", "message_id": "m-9", "status": "sent", "channel": "email",
         "intent": "service"}
    assert world.message(**m)["duplicate"] is False
    assert world.message(**m)["duplicate"] is True
    assert len(world.events("message")) == 1


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/v1/consent", {"profile": "user_id:ann-g", "purpose": "marketing", "channel": "email",
                     "status": "granted", "evidence": DOUBLE_OPT_IN, "note": "x"}, "note"),
    ("/v1/consent", {"profile": "user_id:ann-g", "purpose": "marketing", "channel": "email",
                     "status": "granted", "evidence": DOUBLE_OPT_IN, "actor": "customer"}, "actor"),
    ("/v1/consent", {"profile": "user_id:ann-g", "purpose": "marketing", "channel": "email",
                     "status": "granted", "evidence": {**DOUBLE_OPT_IN, "mood": "happy"}}, "evidence.mood"),
    ("/v1/consent", {"profile": "user_id:ann-g", "purpose": "spam", "channel": "email",
                     "status": "granted", "evidence": DOUBLE_OPT_IN}, "purpose"),
    ("/v1/consent", {"profile": "user_id:ann-g", "purpose": "marketing", "channel": "pigeon",
                     "status": "granted", "evidence": DOUBLE_OPT_IN}, "channel"),
    ("/v1/consent", {"profile": "user_id:ann-g", "purpose": "marketing", "channel": "email",
                     "status": "maybe", "evidence": DOUBLE_OPT_IN}, "status"),
    ("/v1/consent", {"profile": "user_id:ann-g", "purpose": "marketing", "channel": "email",
                     "status": "granted"}, "evidence"),
    ("/v1/decide", {"profile": "user_id:ann-g", "intent": "marketing", "channels": ["email"], "when": AT},
     "when"),
    ("/v1/messages", {"profile": "user_id:ann-g", "message_id": "m", "status": "sent", "channel": "email",
                      "intent": "marketing", "cost": 1}, "cost"),
    ("/v1/messages", {"profile": "user_id:ann-g", "message_id": "m", "status": "read", "channel": "email",
                      "intent": "marketing"}, "status"),
])
def test_bad_bodies_are_rejected_naming_the_problem(world: World, path: str, body: dict[str, Any],
                                                    field: str) -> None:
    world.send("website", "/v1/identify", {"userId": "ann-g", "messageId": "g-1"})
    before = world.storage.log.count()
    r = world.client.post(path, headers=world.bearer("admin"), json=body)
    assert r.status_code == 400, r.text
    err = r.json()
    assert err["success"] is False and field in [e.get("field") for e in err["errors"]], err
    assert world.storage.log.count() == before


def test_bad_decide_values_are_400(world: World) -> None:
    world.send("website", "/v1/identify", {"userId": "ann-h", "messageId": "h-1"})
    for body in ({"profile": "user_id:ann-h", "intent": "gossip", "channels": ["email"]},
                 {"profile": "user_id:ann-h", "intent": "marketing", "channels": []},
                 {"profile": "user_id:ann-h", "intent": "marketing", "channels": ["pigeon"]},
                 {"profile": "user_id:ann-h", "intent": "marketing", "channels": ["email"], "at": "soon"},
                 {"intent": "marketing", "channels": ["email"]}):
        r = world.client.post("/v1/decide", headers=world.bearer("reader"), json=body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["success"] is False and r.json()["message"]


def test_unknown_profiles_are_404(world: World) -> None:
    r = world.client.post("/v1/consent", headers=world.bearer("admin"), json={
        "profile": "email:nobody@example.com", "purpose": "marketing", "channel": "email", "status": "withdrawn"})
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = world.client.post("/v1/decide", headers=world.bearer("reader"),
                          json={"profile": "p_nope", "intent": "marketing", "channels": ["email"]})
    assert r.status_code == 404
    assert world.client.get("/v1/profiles/p_nope/consent", headers=world.bearer("reader")).status_code == 404
    r = world.client.post("/v1/messages", headers=world.bearer("admin"), json={
        "profile": "user_id:nobody", "message_id": "m", "status": "sent", "channel": "email", "intent": "service"})
    assert r.status_code == 404
    assert world.storage.log.count() == 0


def test_keys(world: World) -> None:
    world.send("website", "/v1/identify", {"userId": "ann-k", "messageId": "k-1"})
    consent = {"profile": "user_id:ann-k", "purpose": "marketing", "channel": "email", "status": "withdrawn"}
    decide = {"profile": "user_id:ann-k", "intent": "marketing", "channels": ["email"]}
    message = {"profile": "user_id:ann-k", "message_id": "m", "status": "sent", "channel": "email",
               "intent": "service"}
    calls = [("post", "/v1/consent", consent), ("post", "/v1/decide", decide), ("post", "/v1/messages", message),
             ("get", "/v1/profiles/user_id:ann-k/consent", None)]
    write = {"Authorization": f"Bearer {world.keys['website']}"}
    for method, path, body in calls:
        assert world.client.request(method, path, json=body).status_code == 401, path
        r = world.client.request(method, path, json=body, headers=write)
        assert r.status_code == 403 and r.json()["code"] == "forbidden", path
    # a read key may ask and read, not record
    reader = world.bearer("reader")
    assert world.client.post("/v1/consent", json=consent, headers=reader).status_code == 403
    assert world.client.post("/v1/messages", json=message, headers=reader).status_code == 403
    assert world.client.post("/v1/decide", json=decide, headers=reader).status_code == 200
    assert world.client.get("/v1/profiles/user_id:ann-k/consent", headers=reader).status_code == 200
    assert world.events("consent") == [] and world.events("message") == []


def test_an_invalid_consent_updated_call_is_reported_not_used(world: World) -> None:
    world.send("website", "/v1/identify", {"userId": "ann-i", "messageId": "i-1",
                                           "traits": {"email": "ann.i@example.com"}})
    world.consent_updated("website", "ann-i", "cu-bad", purpose="marketing", channel="email",
                          status="unsubscribed")
    history = world.client.get("/v1/profiles/user_id:ann-i/consent", headers=world.bearer("reader")).json()
    assert history["states"] == []
    (skipped,) = history["skipped"]
    assert skipped["message_id"] == "cu-bad" and "unsubscribed" in skipped["reason"]
