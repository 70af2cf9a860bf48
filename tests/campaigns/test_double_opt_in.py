"""Double opt-in sent by takt: a visitor's sign-up (a public claim) is not consent; takt emails a signed,
expiring link (through a real SMTP server in process, the demo's outbox); the click records the confirmed grant
with its evidence and the very next decision allows marketing email."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from takt.api.app import create_app
from takt.api.confirmations import DELIVERIES
from takt.campaigns.delivery.base import Deliveries
from takt.campaigns.delivery.outbox import Outbox, OutboxSink
from takt.cli.demo import demo_smtp
from takt.clock import FixedClock
from takt.events.model import Event
from takt.policy.suppression_store import suppress
from takt.settings import load
from takt.storage.duckdb import DuckDBStorage

NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)  # outside quiet hours
SIGNUP = datetime(2026, 12, 8, 11, 50, tzinfo=UTC)


def public(kind: str, mid: str, **fields: Any) -> Event:
    return Event(kind=kind, message_id=mid, source="website", timestamp=SIGNUP, received_at=SIGNUP,
                 provenance="customer_provided", trust="public", anonymous_id="visitor-1", **fields)


class World:
    def __init__(self, client: TestClient, storage: DuckDBStorage, admin: str, sink: OutboxSink,
                 clock: FixedClock) -> None:
        self.client, self.storage, self.sink, self.clock = client, storage, sink, clock
        self.admin = {"Authorization": f"Bearer {admin}"}

    def decide(self) -> dict[str, Any]:
        r = self.client.post("/v1/decide", headers=self.admin, json={
            "profile": "anonymous_id:visitor-1", "intent": "marketing", "channels": ["email"]})
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    def ask(self) -> Any:
        return self.client.post("/v1/consent/confirmations", headers=self.admin, json={
            "profile": "anonymous_id:visitor-1", "contact_point": "Ann@Example.com", "purpose": "marketing"})

    def link(self) -> str:
        [entry] = self.sink.outbox.page()
        text = entry.to_json()["text"]
        found = re.search(r"http://\S+/v1/confirm/(\S+)", text)
        assert found, text
        return "/v1/confirm/" + found.group(1)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    storage = DuckDBStorage(tmp_path / "t.duckdb")
    sink = OutboxSink(Outbox(tmp_path / "outbox"))
    sink.start()
    _, admin = storage.keys.create("admin", "admin", now=NOW)
    storage.log.append([
        public("identify", "v-1", traits={"email": "ann@example.com"}),
        public("consent", "v-2", properties={"purpose": "marketing", "channel": "email",
                                             "contact_point": "ann@example.com", "status": "granted",
                                             "actor": "customer",
                                             "evidence": {"method": "double_opt_in", "source": "signup-form"}}),
    ])
    base = load(None, {})
    clock = FixedClock(NOW)
    app = create_app(storage, base.with_values(**demo_smtp(base, sink)), clock)
    try:
        with TestClient(app) as client:
            app.state.ctx.extras["profiles"].catch_up()
            yield World(client, storage, admin.reveal(), sink, clock)
    finally:
        sink.stop()
        storage.close()


def test_confirmation_email_then_click_confirms(world: World) -> None:
    before = world.decide()
    assert before["allowed"] is False
    assert {r["code"] for r in before["reasons"]} & {"no_consent", "claimed_contact_point"}, before

    r = world.ask()
    assert r.status_code == 200, r.text
    assert r.json()["sent"] is True
    [mail] = world.sink.outbox.page()
    assert mail.recipients == ("ann@example.com",)
    assert mail.message["Subject"] == "Please confirm your subscription"
    assert "List-Unsubscribe" not in mail.headers()  # a service message, not marketing
    again = world.ask()  # a second sign-up within resend_hours sends nothing
    assert again.status_code == 200 and again.json()["sent"] is False
    assert len(world.sink.outbox.page()) == 1

    link = world.link()
    page = world.client.get(link)
    assert page.status_code == 200 and "<form method='post'>" in page.text
    assert world.decide()["reasons"] == before["reasons"]  # opening the page (a mail scanner) confirms nothing

    done = world.client.post(link, headers={"User-Agent": "test-browser"})
    assert done.status_code == 200 and "confirmed" in done.text
    after = world.decide()
    assert after["allowed"] is True, str(after)
    assert after["contact_point"] == "ann@example.com"
    grants = [s.event for s in world.storage.log.read(0, 1000)
              if s.event.kind == "consent" and s.event.source == "takt.double_opt_in"]
    assert len(grants) == 1
    g = grants[0]
    assert g.trust == "server" and g.properties["contact_point"] == "ann@example.com"
    assert g.properties["evidence"]["method"] == "double_opt_in"
    assert g.properties["evidence"]["user_agent"] == "test-browser"
    assert world.client.post(link).status_code == 200  # a double click stores nothing new
    assert len([s for s in world.storage.log.read(0, 1000) if s.event.source == "takt.double_opt_in"]) == 1


def test_bad_links_change_nothing(world: World) -> None:
    assert world.ask().json()["sent"] is True
    link = world.link()
    token = link.rsplit("/", 1)[1]
    forged = link[: -len(token)] + token[:-4] + ("AAAA" if token[-4:] != "AAAA" else "BBBB")
    assert world.client.post(forged).status_code == 403
    world.clock.advance(hours=73)  # past delivery.double_opt_in.link_hours
    expired = world.client.post(link)
    assert expired.status_code == 410 and "expired" in expired.text
    assert not [s for s in world.storage.log.read(0, 1000) if s.event.source == "takt.double_opt_in"]


def test_request_errors(world: World) -> None:
    r = world.client.post("/v1/consent/confirmations", headers=world.admin, json={
        "profile": "anonymous_id:visitor-1", "contact_point": "other@example.com", "purpose": "marketing"})
    assert r.status_code == 404 and r.json()["code"] == "unknown_contact_point"
    r = world.client.post("/v1/consent/confirmations", headers=world.admin, json={
        "profile": "anonymous_id:visitor-1", "contact_point": "ann@example.com", "purpose": "spam"})
    assert r.status_code == 400
    write = "Basic " + base64.b64encode(b"nope:").decode()
    assert world.client.post("/v1/consent/confirmations", headers={"Authorization": write}, json={}).status_code == 401
    assert world.sink.outbox.page() == []


def test_no_confirmation_to_a_bounced_address(world: World) -> None:
    suppress(world.storage, "email", "ann@example.com", "hard_bounce", NOW)
    r = world.ask()
    assert r.status_code == 409 and r.json()["code"] == "suppressed"
    assert world.sink.outbox.page() == []


def test_without_an_email_channel(world: World) -> None:
    world.client.app.state.ctx.extras[DELIVERIES] = Deliveries({})  # type: ignore[attr-defined]
    r = world.ask()
    assert r.status_code == 409 and r.json()["code"] == "channel_not_configured"
