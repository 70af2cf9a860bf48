"""Every read of personal data is in the audit log before its body is returned (docs/privacy.md, *Audit log*).

The test walks EVERY route of the app (Starlette's route table, not a hand-written list of paths): a route is
either in ``AUDITED`` (called here with a request that returns personal data; its audit row is checked, and with
the audit log failing it must return nothing but ``503 audit_unavailable``) or in ``NO_PERSONAL_DATA`` with the
reason it returns none. A new route in neither table fails the test: review it and put it in one."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from takt.api.app import create_app
from takt.api.outbox import OUTBOX
from takt.campaigns.delivery.outbox import Outbox
from takt.campaigns.delivery.smtp import PROFILE_HEADER
from takt.clock import FixedClock
from takt.privacy.audit import AuditLog, audit_log
from takt.settings import load
from takt.storage.duckdb import DuckDBStorage

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
EMAIL = "walk@example.com"
COLLECT = {f"/v1/{p}" for p in ("track", "identify", "page", "screen", "group", "alias", "batch", "import",
                                "t", "i", "p", "s", "g", "a", "b")} | {"/b"}

# (method, path) → (audit action, subject: "pid" for the person's profile id, None for a read of many people)
AUDITED: dict[tuple[str, str], tuple[str, str | None]] = {
    ("GET", "/v1/events"): ("events.read", None),
    ("GET", "/v1/profiles"): ("profile.lookup", "pid"),
    ("GET", "/v1/profiles/{profile_id}"): ("profile.read", "pid"),
    ("GET", "/v1/profiles/search"): ("profile.search", "pid"),  # one entry per profile shown
    ("GET", "/v1/profiles/{profile_id}/timeline"): ("profile.timeline", "pid"),
    ("GET", "/v1/profiles/{profile_id}/consent"): ("consent.read", "pid"),
    ("GET", "/v1/profiles/{profile_id}/segments"): ("profile.segments", "pid"),
    ("POST", "/v1/consent"): ("consent.write", "pid"),  # answers with the person's consent state and history
    ("POST", "/v1/decide"): ("decision.read", "pid"),  # answers with the contact point to use
    ("POST", "/v1/next-best-offer"): ("offers.read", "pid"),  # outbound: with policy decisions (contact points)
    ("GET", "/v1/unsubscribe/{token}"): ("unsubscribe.view", "pid"),
    ("POST", "/v1/unsubscribe/{token}"): ("unsubscribe.view", "pid"),
    ("GET", "/p/{token}"): ("preferences.view", "pid"),
    ("POST", "/p/{token}"): ("preferences.view", "pid"),
    ("POST", "/v1/privacy/export"): ("privacy.export", "pid"),
    ("POST", "/v1/privacy/erase"): ("privacy.erase", None),  # (of an unknown identifier: the others stay)
    ("GET", "/v1/segments/{name}/members"): ("segment.members", None),
    ("GET", "/v1/outbox"): ("outbox.read", None),  # the demo's outbox: messages with their addresses
    ("GET", "/v1/outbox/{message_id}"): ("outbox.read", "pid"),  # one message: its X-Takt-Profile
    ("GET", "/v1/profiles/{profile_id}/messages"): ("profile.messages", "pid"),  # reasons name contact points
}

# Reviewed: these return no personal data (say why; a reviewer reads this list).
NO_PERSONAL_DATA: dict[tuple[str, str], str] = {
    **{("POST", p): "collection: answers {success: true} only" for p in COLLECT},
    ("GET", "/health"): "status, backend, version, positions",
    ("GET", "/openapi.json"): "the API's description",
    ("GET", "/v1/events/count"): "a count and the log head",
    ("POST", "/v1/messages"): "records a message; answers profile id, message id, duplicate flag",
    ("GET", "/v1/profiles/{profile_id}/unsubscribe-link"): "an opaque link (no personal data) and the profile id",
    ("GET", "/v1/profiles/{profile_id}/preference-link"): "an opaque link (no personal data) and the profile id",
    ("GET", "/v1/suppression"): "keyed hashes of contact points only",
    ("GET", "/v1/keys"): "API keys' ids, names, kinds and sources; never a secret",
    ("POST", "/v1/keys"): "creates an API key; answers its secret once, no customer data",
    ("DELETE", "/v1/keys/{key_id}"): "revokes an API key; answers the key's metadata",
    ("POST", "/v1/suppression"): "adds a keyed hash; answers the hash entry",
    ("POST", "/v1/suppression/check"): "whether the caller's own value is listed, with its hash entries",
    ("GET", "/v1/offers"): "offer catalogue",
    **{("POST", f"/v1/campaigns/{{name}}/{a}"): "a campaign run's counts" for a in ("launch", "pause", "resume",
                                                                                   "stop")},
    ("GET", "/v1/campaigns/{name}/status"): "a campaign run's counts",
    ("POST", "/v1/offers"): "offer catalogue",
    ("GET", "/v1/offers/{offer_id}"): "offer catalogue",
    ("DELETE", "/v1/offers/{offer_id}"): "offer catalogue",
    ("POST", "/v1/segments"): "segment definitions (admins keep personal data out of them: docs/privacy.md)",
    ("GET", "/v1/segments"): "segment definitions",
    ("GET", "/v1/segments/{name}"): "a segment definition",
    ("PUT", "/v1/segments/{name}"): "a segment definition",
    ("DELETE", "/v1/segments/{name}"): "a segment definition",
    ("GET", "/v1/segments/{name}/versions"): "segment definitions",
    ("GET", "/v1/segments/{name}/count"): "a count",
    ("POST", "/v1/segments/count"): "a count of an inline definition",
    ("GET", "/v1/models"): "the model registry: targets, versions, metrics (no scores of people)",
    ("GET", "/v1/segments/{name}/explain"): "a definition explained",
    ("GET", "/v1/audit"): "the audit log: key ids, actions, profile ids, outcomes (no personal data by design)",
    ("POST", "/v1/campaigns"): "a campaign document (marketing copy and expressions, no customer data)",
    ("GET", "/v1/campaigns"): "campaign documents",
    ("GET", "/v1/campaigns/{name}"): "a campaign document",
    ("PUT", "/v1/campaigns/{name}"): "a campaign document",
    ("DELETE", "/v1/campaigns/{name}"): "archives a campaign document",
    ("GET", "/v1/campaigns/{name}/versions"): "campaign documents",
    ("GET", "/v1/deliveries/dead-letters"): "message identities (campaign, step, profile id, channel) and errors; "
                                            "no address or content by design",
    ("POST", "/v1/deliveries/dead-letters/{letter_id}/replay"): "re-sends through the policy; answers the outcome",
    ("POST", "/v1/deliveries/callbacks/{channel}"): "a provider's signed callback; answers what it recorded",
    ("GET", "/v1/r/{token}"): "records a click; a redirect to the link's own address",
    **{("GET", f"/v1/analytics/{a}"): "aggregates over groups of at least analytics.min_group_size people"
       for a in ("touchpoints", "paths", "attribution")},
    ("GET", "/v1/analytics/fresh"): "per-source counts and lags; no person",
    ("POST", "/v1/consent/confirmations"): "sends a confirmation; answers whether it was sent (no address)",
    ("GET", "/v1/confirm/{token}"): "a page naming the purpose, never the address",
    ("POST", "/v1/confirm/{token}"): "records the confirmation; a page naming the purpose",
}


def _app_routes(app: Any) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for r in app.routes:
        assert isinstance(r, Route), f"a route of an unexpected kind: {r!r}"  # mounts would hide routes
        out |= {(m, r.path) for m in r.methods or () if m != "HEAD"}
    return out


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    storage = DuckDBStorage(tmp_path / "t.duckdb")
    keys: dict[str, str] = {}
    ids: dict[str, str] = {}
    for kind, prov in (("write", "customer_provided"), ("read", None), ("admin", None)):
        key, secret = storage.keys.create(kind, kind, None, prov, now=NOW)
        keys[kind], ids[kind] = secret.reveal(), key.id
    app = create_app(storage, load(None, env={}), FixedClock(NOW))
    with TestClient(app) as client:
        basic = {"Authorization": "Basic " + base64.b64encode(f"{keys['write']}:".encode()).decode()}
        r = client.post("/v1/identify", json={"userId": "w1", "traits": {"email": EMAIL, "name": "Walker"}},
                        headers=basic)
        assert r.status_code == 200
        client.app.state.ctx.extras["profiles"].catch_up()  # type: ignore[attr-defined]
        from tests.test_access_matrix import _attach_orchestrator

        _attach_orchestrator(client.app.state.ctx, storage)  # type: ignore[attr-defined]
        admin = {"Authorization": f"Bearer {keys['admin']}"}
        pid = client.get("/v1/profiles", params={"identifier": "user_id:w1"}, headers=admin).json()["id"]
        assert client.post("/v1/segments", json={"name": "walk", "definition": "trait.email exists"},
                           headers=admin).status_code == 201
        unsub = client.get(f"/v1/profiles/{pid}/unsubscribe-link",
                           params={"channel": "email", "contact_point": EMAIL}, headers=admin).json()["url"]
        pref = client.get(f"/v1/profiles/{pid}/preference-link", headers=admin).json()["url"]
        outbox = Outbox(tmp_path / "outbox")
        mail = f"Subject: hi\r\nTo: {EMAIL}\r\n{PROFILE_HEADER}: {pid}\r\n\r\nHello Walker\r\n".encode()
        sent = outbox.store("news@x.example", [EMAIL], mail)
        client.app.state.ctx.extras[OUTBOX] = outbox  # type: ignore[attr-defined]
        yield {"client": client, "storage": storage, "keys": keys, "ids": ids, "pid": pid,
               "unsub": unsub.rsplit("/", 1)[1], "pref": pref.rsplit("/", 1)[1], "outbox": sent}
    storage.close()


def _call(w: dict[str, Any], method: str, path: str) -> Any:
    client: TestClient = w["client"]
    admin = {"Authorization": f"Bearer {w['keys']['admin']}"}
    url = (path.replace("{profile_id}", w["pid"]).replace("{name}", "walk").replace("{message_id}", w["outbox"])
           .replace("{token}", w["pref"] if path.startswith("/p/") else w["unsub"]))
    if (method, path) == ("POST", "/p/{token}"):
        return client.post(url, data={"token": w["pref"]})
    if path.startswith(("/p/", "/v1/unsubscribe/")):
        return client.request(method, url)  # no key: the link is the authorization
    bodies = {
        "/v1/consent": {"profile": "user_id:w1", "purpose": "marketing", "channel": "email", "contact_point": EMAIL,
                        "status": "granted", "evidence": {"method": "web_form"}},
        "/v1/decide": {"profile": "user_id:w1", "intent": "marketing", "channels": ["email"]},
        "/v1/next-best-offer": {"profile": "user_id:w1", "intent": "marketing", "channels": ["email"]},
        "/v1/privacy/export": {"identifier": "user_id:w1"},
        "/v1/privacy/erase": {"identifier": "email:nobody@example.com"},
    }
    if method == "POST":
        return client.post(url, json=bodies[path], headers=admin)
    params = {"identifier": "user_id:w1"} if path == "/v1/profiles" else {"q": "walk"} \
        if path == "/v1/profiles/search" else None
    return client.get(url, params=params, headers=admin)


def test_every_route_is_reviewed(tmp_path: Path) -> None:
    storage = DuckDBStorage(tmp_path / "t.duckdb")
    try:
        routes = _app_routes(create_app(storage, load(None, env={}), FixedClock(NOW)))
    finally:
        storage.close()
    assert not set(AUDITED) & set(NO_PERSONAL_DATA)
    unreviewed = routes - set(AUDITED) - set(NO_PERSONAL_DATA)
    assert not unreviewed, f"routes nobody reviewed for personal data (audit them or list why not): {unreviewed}"
    assert routes >= set(AUDITED) | set(NO_PERSONAL_DATA), "the tables name routes the app no longer has"


@pytest.mark.parametrize("method,path", sorted(AUDITED))
def test_a_personal_data_read_is_audited(world: dict[str, Any], method: str, path: str) -> None:
    action, subject = AUDITED[(method, path)]
    log = audit_log(world["storage"])
    before = log.entries(1)
    r = _call(world, method, path)
    assert r.status_code == 200, r.text
    new = [e for e in log.entries(1000) if not before or e.id > before[0].id]
    mine = [e for e in new if e.action == action]
    assert mine, f"{method} {path} wrote no {action!r} row; it wrote {[e.action for e in new]}"
    entry = mine[0]
    assert entry.subject == (world["pid"] if subject == "pid" else None)
    public = path.startswith(("/p/", "/v1/unsubscribe/"))
    assert entry.key_id.startswith("link:") if public else entry.key_id == world["ids"]["admin"]
    assert EMAIL not in str([e.to_json() for e in new])  # the audit log holds no personal data


@pytest.mark.parametrize("method,path", sorted(AUDITED))
def test_nothing_is_returned_when_the_read_cannot_be_audited(world: dict[str, Any], method: str, path: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: AuditLog, rows: list[Any]) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(AuditLog, "_insert", broken)
    r = _call(world, method, path)
    assert r.status_code == 503 and "audit_unavailable" in r.text, (r.status_code, r.text[:300])
    assert EMAIL not in r.text and "Walker" not in r.text
