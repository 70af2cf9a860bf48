"""One-click unsubscribe (RFC 8058) through HTTP: effective for the very next decision, and unforgeable."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from takt.api.app import create_app
from takt.clock import FixedClock
from takt.settings import load
from takt.storage.duckdb import DuckDBStorage

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)  # 10:00 UTC: outside quiet hours


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    storage = DuckDBStorage(tmp_path / "u.duckdb")
    keys = {}
    for kind, prov in (("write", "customer_provided"), ("admin", None)):
        _, secret = storage.keys.create(kind, kind, None, prov, now=NOW)
        keys[kind] = secret.reveal()
    with TestClient(create_app(storage, load(None, env={}), FixedClock(NOW))) as client:
        yield client, keys
    storage.close()


def test_unsubscribe_is_effective_for_the_very_next_decision(world) -> None:
    client, keys = world
    write = {"Authorization": "Basic " + base64.b64encode(f"{keys['write']}:".encode()).decode()}
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    assert client.post("/v1/identify", headers=write, json={
        "userId": "ann", "traits": {"email": "ann@example.com"}, "messageId": "i1",
        "timestamp": "2026-11-01T10:00:00Z"}).status_code == 200
    # the customer's own double-opt-in grant, from her session
    assert client.post("/v1/track", headers=write, json={
        "userId": "ann", "event": "Consent Updated", "messageId": "c1", "timestamp": "2026-11-02T10:00:00Z",
        "properties": {"purpose": "marketing", "channel": "email", "contact_point": "ann@example.com",
                       "status": "granted", "evidence": {"method": "double_opt_in"}}}).status_code == 200
    decide = {"profile": "email:ann@example.com", "intent": "marketing", "channels": ["email"]}
    before = client.post("/v1/decide", headers=admin, json=decide).json()
    assert before["allowed"] is True, before

    pid = client.get("/v1/profiles", params={"identifier": "user_id:ann"}, headers=admin).json()["id"]
    link = client.get(f"/v1/profiles/{pid}/unsubscribe-link",
                      params={"channel": "email", "contact_point": "ann@example.com"}, headers=admin).json()
    assert link["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert link["headers"]["List-Unsubscribe"] == f"<{link['url']}>"
    path = link["url"].replace("http://testserver", "")
    # a GET (a link scanner) changes nothing
    page = client.get(path)
    assert page.status_code == 200 and "<form method='post'>" in page.text
    assert client.post("/v1/decide", headers=admin, json=decide).json()["allowed"] is True
    # the one-click POST (no key: the signature is the authorization) withdraws before answering
    r = client.post(path, content=b"List-Unsubscribe=One-Click",
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and r.json()["unsubscribed"]["channel"] == "email"
    after = client.post("/v1/decide", headers=admin, json=decide).json()
    assert after["allowed"] is False
    assert "withdrawn" in {x["code"] for x in after["rejected"]["email"]}
    # twice is still unsubscribed; an admin re-grant cannot undo it
    assert client.post(path).status_code == 200
    client.post("/v1/consent", headers=admin, json={
        "profile": "email:ann@example.com", "purpose": "marketing", "channel": "email",
        "contact_point": "ann@example.com", "status": "granted", "evidence": {"method": "double_opt_in"}})
    assert client.post("/v1/decide", headers=admin, json=decide).json()["allowed"] is False


def test_forged_or_altered_links_are_refused(world) -> None:
    client, keys = world
    write = {"Authorization": "Basic " + base64.b64encode(f"{keys['write']}:".encode()).decode()}
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    client.post("/v1/identify", headers=write, json={"userId": "bob", "traits": {"email": "bob@example.com"}})
    pid = client.get("/v1/profiles", params={"identifier": "user_id:bob"}, headers=admin).json()["id"]
    url = client.get(f"/v1/profiles/{pid}/unsubscribe-link", params={"contact_point": "bob@example.com"},
                     headers=admin).json()["url"]
    token = url.rsplit("/", 1)[1]
    # opaque tokens (takt.api.links): one made with another secret, or altered, is refused
    from takt.api.unsubscribe import make_token

    forged = make_token(b"x" * 32, pid, "email", "eve@example.com")
    assert client.post(f"/v1/unsubscribe/{forged}").status_code == 403
    altered = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
    assert client.post(f"/v1/unsubscribe/{altered}").status_code == 403
    assert client.post("/v1/unsubscribe/not-a-token").status_code == 400
    assert client.get(f"/v1/profiles/{pid}/unsubscribe-link", params={"contact_point": "x", "channel": "fax"},
                      headers=admin).status_code == 400


def test_a_browser_cannot_resubscribe_someone_who_unsubscribed(world) -> None:
    """Issue 11, story 1: after a one-click unsubscribe, a ``Consent Updated`` call with the browser's public
    key for a guessable userId, claiming a double opt-in, neither confirms consent nor lifts the withdrawal or
    the suppression entry: it is recorded as a claim. (The public key arrives with another change; the event is
    built here with the trust that key gives it.)"""
    from takt.events.model import Event

    client, keys = world
    write = {"Authorization": "Basic " + base64.b64encode(f"{keys['write']}:".encode()).decode()}
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    assert client.post("/v1/identify", headers=write, json={
        "userId": "42", "traits": {"email": "ann@example.com"}, "messageId": "i1",
        "timestamp": "2026-11-01T10:00:00Z"}).status_code == 200
    assert client.post("/v1/track", headers=write, json={
        "userId": "42", "event": "Consent Updated", "messageId": "c1", "timestamp": "2026-11-02T10:00:00Z",
        "properties": {"purpose": "marketing", "channel": "email", "contact_point": "ann@example.com",
                       "status": "granted", "evidence": {"method": "double_opt_in"}}}).status_code == 200
    decide = {"profile": "user_id:42", "intent": "marketing", "channels": ["email"]}
    assert client.post("/v1/decide", headers=admin, json=decide).json()["allowed"] is True
    pid = client.get("/v1/profiles", params={"identifier": "user_id:42"}, headers=admin).json()["id"]
    link = client.get(f"/v1/profiles/{pid}/unsubscribe-link",
                      params={"channel": "email", "contact_point": "ann@example.com"}, headers=admin).json()
    assert client.post(link["url"].replace("http://testserver", "")).status_code == 200

    storage = client.app.state.ctx.storage  # type: ignore[attr-defined]
    later = datetime(2026, 11, 20, 10, 5, tzinfo=UTC)
    storage.log.append([Event(
        kind="track", event="Consent Updated", message_id="forged", source="website", timestamp=later,
        received_at=later, provenance="customer_provided", user_id="42", trust="public",
        context={"ip": "198.51.100.7"},
        properties={"purpose": "marketing", "channel": "email", "contact_point": "ann@example.com",
                    "status": "granted", "evidence": {"method": "double_opt_in"}})])
    # appended behind the server's back (not through its writer, so no read waits for it): fold it now
    client.app.state.ctx.extras["profiles"].catch_up()  # type: ignore[attr-defined]

    after = client.post("/v1/decide", headers=admin, json=decide).json()
    assert after["allowed"] is False
    assert {"withdrawn", "suppressed"} <= {r["code"] for r in after["rejected"]["email"]}, after
    history = client.get(f"/v1/profiles/{pid}/consent", headers=admin).json()
    (state,) = [s for s in history["states"] if s["channel"] == "email" and s["contact_point"]]
    assert state["status"] == "withdrawn" and state["confirmed"] is False
    last = state["history"][-1]
    assert last["applied"] is False and last["trust"] == "public" and "claim" in last["note"]
    assert last["evidence"]["method"] == "double_opt_in"  # the claimed evidence is kept, as a claim
    checked = client.post("/v1/suppression/check", headers=admin,
                          json={"kind": "email", "value": "ann@example.com"}).json()
    assert checked["suppressed"] is True
    # a receipt still reaches her: the unsubscribe stopped marketing only
    assert client.post("/v1/decide", headers=admin, json={**decide, "intent": "transactional"}).json()["allowed"]


def test_the_pages_say_exactly_what_was_stopped(world) -> None:
    client, keys = world
    write = {"Authorization": "Basic " + base64.b64encode(f"{keys['write']}:".encode()).decode()}
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    client.post("/v1/identify", headers=write, json={"userId": "cy", "traits": {"email": "cy@example.com"}})
    pid = client.get("/v1/profiles", params={"identifier": "user_id:cy"}, headers=admin).json()["id"]
    path = client.get(f"/v1/profiles/{pid}/unsubscribe-link", params={"contact_point": "cy@example.com"},
                      headers=admin).json()["url"].replace("http://testserver", "")
    page = client.get(path).text
    assert "marketing messages by email to <strong>cy@example.com</strong>" in page
    assert "order confirmations" in page and "still reach this address" in page
    done = client.post(path, headers={"Accept": "text/html"}).text
    assert "We stopped marketing messages by email to <strong>cy@example.com</strong>" in done
    assert "still reach this address" in done and "No more" not in done
    answer = client.post(path).json()
    assert answer["unsubscribed"]["purpose"] == "marketing" and answer["still_sent"] == ["transactional", "service"]
