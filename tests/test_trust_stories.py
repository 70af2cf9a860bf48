"""Issue 11's two stories through HTTP, as an attacker with only a web page's (public) write key would try them:
both are refused; the same calls through a server key keep their documented meaning."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from takt.api.app import create_app
from takt.clock import FixedClock
from takt.settings import load
from takt.storage.duckdb import DuckDBStorage

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)  # outside quiet hours


@dataclass
class World:
    client: TestClient
    public: dict[str, str]
    server: dict[str, str]
    admin: dict[str, str]
    clock: FixedClock

    def decide(self, profile: str, intent: str, channels: list[str]) -> dict:
        r = self.client.post("/v1/decide", headers=self.admin,
                             json={"profile": profile, "intent": intent, "channels": channels})
        assert r.status_code == 200, r.text
        return r.json()


def _basic(secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{secret}:".encode()).decode()}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    storage = DuckDBStorage(tmp_path / "t.duckdb")
    _, public = storage.keys.create("write", "website", None, "customer_provided", now=NOW, trust="public")
    _, server = storage.keys.create("write", "backend", None, "customer_provided", now=NOW, trust="server")
    _, admin = storage.keys.create("admin", "ops", now=NOW)
    clock = FixedClock(NOW)
    with TestClient(create_app(storage, load(None, env={}), clock)) as client:
        yield World(client, _basic(public.reveal()), _basic(server.reveal()),
                    {"Authorization": f"Bearer {admin.reveal()}"}, clock)
    storage.close()


def _ok(r) -> None:  # type: ignore[no-untyped-def]
    assert r.status_code == 200, r.text


def _grant(w: World, headers: dict[str, str], user: str, email: str, mid: str,
           at: str = "2026-11-02T10:00:00Z") -> None:
    _ok(w.client.post("/v1/track", headers=headers, json={
        "userId": user, "event": "Consent Updated", "messageId": mid, "timestamp": at,
        "properties": {"purpose": "marketing", "channel": "email", "contact_point": email,
                       "status": "granted", "evidence": {"method": "double_opt_in"}}}))


def _unsubscribe(w: World, user: str, email: str) -> None:
    pid = w.client.get("/v1/profiles", params={"identifier": f"user_id:{user}"}, headers=w.admin).json()["id"]
    link = w.client.get(f"/v1/profiles/{pid}/unsubscribe-link",
                        params={"channel": "email", "contact_point": email}, headers=w.admin).json()
    path = "/" + link["url"].split("/", 3)[3]
    r = w.client.post(path, content=b"List-Unsubscribe=One-Click",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200, r.text


def _subscribed(w: World, user: str, email: str) -> None:
    _ok(w.client.post("/v1/identify", headers=w.server, json={
        "userId": user, "traits": {"email": email}, "messageId": f"id-{user}", "timestamp": "2026-11-01T10:00:00Z"}))
    _grant(w, w.server, user, email, f"g-{user}")
    assert w.decide(f"email:{email}", "marketing", ["email"])["allowed"] is True


def test_a_public_key_cannot_resubscribe_someone_who_unsubscribed(world: World) -> None:
    _subscribed(world, "v1", "v1@example.com")
    _unsubscribe(world, "v1", "v1@example.com")
    assert world.decide("email:v1@example.com", "marketing", ["email"])["allowed"] is False
    # the attacker (or a script on any page) asserts a double opt-in through the browser's key
    _grant(world, world.public, "v1", "v1@example.com", "attack-1", at="2026-11-20T10:00:00Z")
    after = world.decide("email:v1@example.com", "marketing", ["email"])
    assert after["allowed"] is False, after
    check = world.client.post("/v1/suppression/check", headers=world.admin,
                              json={"kind": "email", "value": "v1@example.com"}).json()
    assert check["suppressed"] is True, check


def test_through_a_server_key_the_customers_confirmed_grant_still_lifts_the_unsubscribe(world: World) -> None:
    _subscribed(world, "v1", "v1@example.com")
    _unsubscribe(world, "v1", "v1@example.com")
    # an hour later the backend reports the customer's confirmed re-subscription
    world.clock.advance(hours=1)
    _grant(world, world.server, "v1", "v1@example.com", "regrant-1", at="2026-11-20T11:00:00Z")
    assert world.decide("email:v1@example.com", "marketing", ["email"])["allowed"] is True


def _hijack(w: World, attacker_headers: dict[str, str]) -> None:
    _ok(w.client.post("/v1/identify", headers=attacker_headers,
                      json={"anonymousId": "att", "traits": {"email": "v2@example.com"}, "messageId": "a1"}))
    _ok(w.client.post("/v1/identify", headers=attacker_headers,
                      json={"anonymousId": "att", "traits": {"email": "attacker@evil.example"}, "messageId": "a2"}))


def test_a_public_key_cannot_hijack_a_contact_point(world: World) -> None:
    _ok(world.client.post("/v1/identify", headers=world.public,
                          json={"userId": "v2", "traits": {"email": "v2@example.com"}, "messageId": "v2-1"}))
    _ok(world.client.post("/v1/identify", headers=world.server,
                          json={"userId": "v2", "traits": {"email": "v2@example.com"}, "messageId": "v2-2"}))
    _hijack(world, world.public)
    for intent in ("transactional", "service"):
        d = world.decide("user_id:v2", intent, ["email"])
        assert d["allowed"] is True and d["contact_point"] == "v2@example.com", d
        assert "attacker@evil.example" not in str(d)
    profile = world.client.get("/v1/profiles", params={"identifier": "user_id:v2"}, headers=world.admin).json()
    assert "attacker@evil.example" not in str(profile)
    # the visitor is not v2: its email claim did not merge it
    att = world.client.get("/v1/profiles", params={"identifier": "anonymous_id:att"}, headers=world.admin).json()
    assert att["id"] != profile["id"]
