"""Delivery over HTTP: signed provider callbacks → message events and suppression; bad callbacks store nothing;
the click redirect; the dead-letter list and its replay."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from takt.api.app import create_app
from takt.api.deliveries import RESEND
from takt.api.links import seal_claims, signing_secret
from takt.campaigns.dead_letter_store import dead_letters
from takt.campaigns.dead_letters import DeadLetter
from takt.campaigns.delivery.clicks import click_claims, rewrite_links, tracked
from takt.campaigns.delivery.signing import signed_headers
from takt.campaigns.model import DeliveryResult, OutboundMessage
from takt.clock import FixedClock
from takt.settings import load
from takt.storage.base import Storage
from tests.conftest import BACKENDS, open_backend

NOW = datetime(2026, 12, 8, 1, 0, tzinfo=UTC)
SECRET = "callback-secret-0123456789"


class World:
    def __init__(self, client: TestClient, storage: Storage, keys: dict[str, str], pid: str):
        self.client, self.storage, self.keys, self.pid = client, storage, keys, pid

    def bearer(self, name: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[name]}"}

    def callback(self, body: Any, channel: str = "email", secret: str = SECRET, at: datetime = NOW,
                 headers: dict[str, str] | None = None) -> Any:
        raw = orjson.dumps(body)
        h = signed_headers(secret, int(at.timestamp()), raw) if headers is None else headers
        return self.client.post(f"/v1/deliveries/callbacks/{channel}", content=raw,
                                headers={**h, "Content-Type": "application/json"})

    def head(self) -> int:
        return self.storage.log.head()

    def messages(self) -> list[dict[str, Any]]:
        self.client.app.state.ctx.extras["profiles"].catch_up()  # type: ignore[attr-defined]
        return [s.event.properties for s in self.storage.log.read(0, 10_000) if s.event.kind == "message"]

    def suppressed(self, value: str) -> list[str]:
        r = self.client.post("/v1/suppression/check", headers=self.bearer(), json={"kind": "email", "value": value})
        assert r.status_code == 200, r.text
        return [e["reason"] for e in r.json()["entries"]]


@pytest.fixture(params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    storage = open_backend(request.param, tmp_path, request)
    keys = {}
    for kind in ("write", "admin"):
        _, secret = storage.keys.create(kind, kind, None, "customer_provided" if kind == "write" else None, now=NOW)
        keys[kind] = secret.reveal()
    settings = load(None, env={"TAKT_DELIVERY__WEBHOOK_SECRETS": orjson.dumps(
        {"email": SECRET, "sms": SECRET}).decode()})
    app = create_app(storage, settings, FixedClock(NOW))
    try:
        with TestClient(app) as client:
            basic = {"Authorization": "Basic " + base64.b64encode(f"{keys['write']}:".encode()).decode()}
            r = client.post("/v1/identify", headers=basic, json={
                "userId": "ada", "traits": {"email": "ada@example.com"}, "timestamp": "2026-12-07T12:00:00Z"})
            assert r.status_code == 200, r.text
            client.app.state.ctx.extras["profiles"].catch_up()  # type: ignore[attr-defined]
            pid = client.get("/v1/profiles", params={"identifier": "user_id:ada"},
                             headers={"Authorization": f"Bearer {keys['admin']}"}).json()["id"]
            yield World(client, storage, keys, pid)
    finally:
        storage.close()


def test_hard_bounce_records_the_event_and_suppresses_the_address(world: World) -> None:
    body = {"message_id": "msg_1", "profile_id": world.pid, "status": "bounced", "bounce": "hard",
            "contact_point": "ada@example.com", "intent": "marketing", "campaign": "winter"}
    assert world.suppressed("ada@example.com") == []
    r = world.callback(body)
    assert r.status_code == 200, r.text
    assert r.json()["recorded"] is True and r.json()["duplicate"] is False
    assert world.messages() == [{"message_id": "msg_1", "status": "bounced", "channel": "email",
                                 "contact_point": "ada@example.com", "campaign": "winter", "intent": "marketing"}]
    assert world.suppressed("ada@example.com") == ["hard_bounce"]
    again = world.callback(body)  # a provider retrying its callback stores nothing new
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert len(world.messages()) == 1


def test_complaint_suppresses_and_known_messages_fill_in_the_rest(world: World) -> None:
    r = world.client.post("/v1/messages", headers=world.bearer(), json={
        "profile": world.pid, "message_id": "msg_2", "status": "sent", "channel": "email",
        "contact_point": "ada@example.com", "intent": "marketing", "campaign": "spring"})
    assert r.status_code == 200, r.text
    r = world.callback({"message_id": "msg_2", "profile_id": world.pid, "status": "complained"})
    assert r.status_code == 200, r.text
    complained = [m for m in world.messages() if m["status"] == "complained"]
    assert complained == [{"message_id": "msg_2", "status": "complained", "channel": "email",
                           "contact_point": "ada@example.com", "campaign": "spring", "intent": "marketing"}]
    assert world.suppressed("ada@example.com") == ["complaint"]


def test_soft_bounce_and_delivered(world: World) -> None:
    head = world.head()
    soft = world.callback({"message_id": "msg_3", "profile_id": world.pid, "status": "bounced", "bounce": "soft",
                           "intent": "marketing", "contact_point": "ada@example.com"})
    assert soft.status_code == 202 and soft.json()["recorded"] is False
    assert world.head() == head
    delivered = world.callback({"message_id": "msg_3", "profile_id": world.pid, "status": "delivered",
                                "intent": "marketing"}, channel="sms")
    assert delivered.status_code == 200, delivered.text
    assert [m["status"] for m in world.messages()] == ["delivered"]
    assert world.suppressed("ada@example.com") == []


@pytest.mark.parametrize("case", ["unsigned", "wrong_secret", "stale", "tampered", "bad_body", "unknown_field",
                                  "no_intent", "unknown_profile", "unknown_channel", "not_json"])
def test_bad_callbacks_get_a_clear_4xx_and_store_nothing(world: World, case: str) -> None:
    good = {"message_id": "msg_4", "profile_id": world.pid, "status": "bounced", "intent": "marketing",
            "contact_point": "ada@example.com"}
    head = world.head()
    if case == "unsigned":
        r, want = world.callback(good, headers={}), 401
    elif case == "wrong_secret":
        r, want = world.callback(good, secret="another-secret-0123456789"), 401
    elif case == "stale":
        r, want = world.callback(good, at=datetime(2026, 12, 7, 0, 0, tzinfo=UTC)), 401
    elif case == "tampered":
        raw = orjson.dumps(good)
        h = signed_headers(SECRET, int(NOW.timestamp()), raw)
        r = world.client.post("/v1/deliveries/callbacks/email", content=raw.replace(b"msg_4", b"msg_5"), headers=h)
        want = 401
    elif case == "bad_body":
        r, want = world.callback({**good, "status": "exploded"}), 400
    elif case == "unknown_field":
        r, want = world.callback({**good, "extra": 1}), 400
    elif case == "no_intent":
        r, want = world.callback({k: v for k, v in good.items() if k != "intent"}), 400
    elif case == "unknown_profile":
        r, want = world.callback({**good, "profile_id": "p_nobody"}), 404
    elif case == "unknown_channel":
        r, want = world.callback(good, channel="pigeon"), 404
    else:
        raw = b"{not json"
        r = world.client.post("/v1/deliveries/callbacks/email", content=raw,
                              headers=signed_headers(SECRET, int(NOW.timestamp()), raw))
        want = 400
    assert r.status_code == want, r.text
    assert r.json()["success"] is False and r.json()["code"]
    assert world.head() == head
    assert world.suppressed("ada@example.com") == []


def test_click_redirect_records_one_click(world: World) -> None:
    msg = OutboundMessage("msg_6", "winter", 1, "0", world.pid, "marketing", "email", "ada@example.com",
                          {"subject": "s", "text": "t", "html": '<a href="https://travel.example/ny?a=1&amp;b=2">NY</a>'
                                                                 ' <a href="http://testserver/v1/unsubscribe/x">stop</a>'})
    secret = signing_secret(world.storage)
    out = tracked(msg, "http://testserver", lambda claims: seal_claims(secret, claims))
    html = out.content["html"]
    assert "travel.example" not in html and 'href="http://testserver/v1/unsubscribe/x"' in html
    link = html.split('href="')[1].split('"')[0]
    assert link.startswith("http://testserver/v1/r/")
    for _ in range(2):
        r = world.client.get(link, follow_redirects=False)
        assert r.status_code == 302, r.text
        assert r.headers["location"] == "https://travel.example/ny?a=1&b=2"
    assert world.messages() == [{"message_id": "msg_6", "status": "clicked", "channel": "email",
                                 "campaign": "winter", "intent": "marketing"}]
    token = link.rsplit("/", 1)[1]
    forged = token[:-4] + ("AAAA" if token[-4:] != "AAAA" else "BBBB")
    assert world.client.get(f"/v1/r/{forged}", follow_redirects=False).status_code == 403
    not_click = seal_claims(secret, {**click_claims(msg, "https://x.example"), "k": "unsubscribe"})
    assert world.client.get(f"/v1/r/{not_click}", follow_redirects=False).status_code == 403


def test_rewrite_links_leaves_other_markup() -> None:
    html = '<p><a class="b" href=\'https://a.example/x\'>x</a> <img src="https://a.example/i.png"> mailto</p>'
    out = rewrite_links(html, lambda u: "https://t.example/r/" + u[-1])
    assert out == '<p><a class="b" href=\'https://t.example/r/x\'>x</a> <img src="https://a.example/i.png"> mailto</p>'


def test_dead_letters_list_and_replay(world: World) -> None:
    store = dead_letters(world.storage)
    store.add(DeadLetter("msg_7", "winter", 1, "0", world.pid, "marketing", "sms", "webhook answered 500", 5, NOW))
    r = world.client.get("/v1/deliveries/dead-letters", headers=world.bearer())
    assert r.status_code == 200, r.text
    assert r.json()["total"] == 1 and r.json()["dead_letters"][0]["id"] == "msg_7"
    assert world.client.get("/v1/deliveries/dead-letters", headers=world.bearer("write")).status_code == 403
    no_orchestrator = world.client.post("/v1/deliveries/dead-letters/msg_7/replay", headers=world.bearer())
    assert no_orchestrator.status_code == 409 and no_orchestrator.json()["code"] == "replay_unavailable"
    resent: list[str] = []

    def resend(letter: DeadLetter) -> DeliveryResult | None:
        resent.append(letter.message_id)
        return DeliveryResult("sent", provider_id="prov-7")

    world.client.app.state.ctx.extras[RESEND] = resend  # type: ignore[attr-defined]
    r = world.client.post("/v1/deliveries/dead-letters/msg_7/replay", headers=world.bearer())
    assert r.status_code == 200, r.text
    assert r.json()["dead_letter"]["replay_status"] == "sent" and resent == ["msg_7"]
    assert world.client.post("/v1/deliveries/dead-letters/msg_7/replay", headers=world.bearer()).status_code == 409
    assert world.client.post("/v1/deliveries/dead-letters/nope/replay", headers=world.bearer()).status_code == 404
    pending = world.client.get("/v1/deliveries/dead-letters", params={"pending": "true"}, headers=world.bearer())
    assert pending.json()["total"] == 0
