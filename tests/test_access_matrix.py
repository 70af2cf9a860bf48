"""Access control, walked as a matrix: every endpoint in the OpenAPI document × every kind of caller.

The table below is the rule, written out independently of the code: write keys ingest only; read keys read
the log, profiles and decisions; admin keys do what read keys do and manage consent, messages and keys. No key, an
unknown key or a revoked key gets 401; a known key of the wrong kind gets 403. A test fails when the document
gains an endpoint this table does not list."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from takt.api import app as app_mod
from takt.api.app import create_app
from takt.api.confirmations import DELIVERIES
from takt.api.deliveries import RESEND
from takt.api.links import contact_hash, seal_claims, signing_secret
from takt.api.openapi import document
from takt.api.outbox import OUTBOX
from takt.campaigns.dead_letter_store import dead_letters
from takt.campaigns.dead_letters import DeadLetter
from takt.campaigns.delivery.base import Channel, Deliveries
from takt.campaigns.delivery.outbox import Outbox
from takt.campaigns.double_opt_in import token_claims
from takt.campaigns.model import DeliveryResult, OutboundMessage
from takt.clock import FixedClock
from takt.settings import load
from takt.storage.duckdb import DuckDBStorage

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
COLLECT = {f"/v1/{p}" for p in ("track", "identify", "page", "screen", "group", "alias", "batch", "import",
                                "t", "i", "p", "s", "g", "a", "b")} | {"/b"}
ALLOWED: dict[tuple[str, str], set[str]] = {
    **{("POST", p): {"write"} for p in COLLECT},
    ("GET", "/health"): {"none", "unknown", "revoked", "write", "read", "admin"},
    ("GET", "/v1/events"): {"read", "admin"},
    ("GET", "/v1/events/count"): {"read", "admin"},
    ("GET", "/v1/analytics/touchpoints"): {"read", "admin"},
    ("GET", "/v1/analytics/paths"): {"read", "admin"},
    ("GET", "/v1/analytics/attribution"): {"read", "admin"},
    ("GET", "/v1/analytics/fresh"): {"read", "admin"},
    ("GET", "/v1/profiles"): {"read", "admin"},
    ("GET", "/v1/profiles/search"): {"read", "admin"},
    ("GET", "/v1/models"): {"read", "admin"},
    ("POST", "/v1/segments/count"): {"read", "admin"},
    ("GET", "/v1/profiles/{profile_id}"): {"read", "admin"},
    ("GET", "/v1/profiles/{profile_id}/timeline"): {"read", "admin"},
    ("GET", "/v1/profiles/{profile_id}/consent"): {"read", "admin"},
    ("POST", "/v1/decide"): {"read", "admin"},
    ("POST", "/v1/consent"): {"admin"},
    ("POST", "/v1/messages"): {"admin"},
    ("POST", "/v1/privacy/export"): {"admin"},
    ("POST", "/v1/privacy/erase"): {"admin"},
    ("GET", "/v1/audit"): {"admin"},
    ("GET", "/v1/profiles/{profile_id}/unsubscribe-link"): {"admin"},
    # the signed token is the authorization: anyone holding the link may use it, with or without a key
    ("GET", "/v1/unsubscribe/{token}"): {"none", "unknown", "revoked", "write", "read", "admin"},
    ("POST", "/v1/unsubscribe/{token}"): {"none", "unknown", "revoked", "write", "read", "admin"},
    ("GET", "/v1/profiles/{profile_id}/preference-link"): {"admin"},
    # the preference center: the signed link is the authorization, as for unsubscribing
    ("GET", "/p/{token}"): {"none", "unknown", "revoked", "write", "read", "admin"},
    ("POST", "/p/{token}"): {"none", "unknown", "revoked", "write", "read", "admin"},
    ("GET", "/v1/suppression"): {"admin"},
    ("POST", "/v1/suppression"): {"admin"},
    ("POST", "/v1/suppression/check"): {"admin"},
    ("GET", "/v1/offers"): {"read", "admin"},
    ("POST", "/v1/offers"): {"admin"},
    ("GET", "/v1/offers/{offer_id}"): {"read", "admin"},
    ("DELETE", "/v1/offers/{offer_id}"): {"admin"},
    ("POST", "/v1/next-best-offer"): {"read", "admin"},
    ("POST", "/v1/segments"): {"admin"},
    ("GET", "/v1/segments"): {"read", "admin"},
    ("GET", "/v1/segments/{name}"): {"read", "admin"},
    ("PUT", "/v1/segments/{name}"): {"admin"},
    ("DELETE", "/v1/segments/{name}"): {"admin"},
    ("GET", "/v1/segments/{name}/versions"): {"read", "admin"},
    ("GET", "/v1/segments/{name}/count"): {"read", "admin"},
    ("GET", "/v1/segments/{name}/members"): {"read", "admin"},
    ("GET", "/v1/segments/{name}/explain"): {"read", "admin"},
    ("GET", "/v1/profiles/{profile_id}/segments"): {"read", "admin"},
    ("POST", "/v1/keys"): {"admin"},
    ("GET", "/v1/keys"): {"admin"},
    ("DELETE", "/v1/keys/{key_id}"): {"admin"},
    ("POST", "/v1/campaigns"): {"admin"},
    ("GET", "/v1/campaigns"): {"read", "admin"},
    ("GET", "/v1/campaigns/{name}"): {"read", "admin"},
    ("PUT", "/v1/campaigns/{name}"): {"admin"},
    ("DELETE", "/v1/campaigns/{name}"): {"admin"},
    ("GET", "/v1/campaigns/{name}/versions"): {"read", "admin"},
    ("GET", "/v1/deliveries/dead-letters"): {"admin"},
    ("POST", "/v1/deliveries/dead-letters/{letter_id}/replay"): {"admin"},
    # a provider's callback is authorized by its HMAC signature alone: a key without one gets 401, whoever holds it
    ("POST", "/v1/deliveries/callbacks/{channel}"): set(),
    # a tracked link: the signed token is the authorization (302 to the link's address)
    ("GET", "/v1/r/{token}"): {"none", "unknown", "revoked", "write", "read", "admin"},
    # the demo's outbox holds addresses: admin only
    ("GET", "/v1/outbox"): {"admin"},
    ("GET", "/v1/outbox/{message_id}"): {"admin"},
    # double opt-in: an admin (a sign-up form's backend) asks takt to send the confirmation; the signed link
    # the email carries is the authorization of the page and of its button
    ("POST", "/v1/consent/confirmations"): {"admin"},
    ("GET", "/v1/confirm/{token}"): {"none", "unknown", "revoked", "write", "read", "admin"},
    ("POST", "/v1/confirm/{token}"): {"none", "unknown", "revoked", "write", "read", "admin"},
    **{("POST", f"/v1/campaigns/{{name}}/{a}"): {"admin"} for a in ("launch", "pause", "resume", "stop")},
    ("GET", "/v1/campaigns/{name}/status"): {"read", "admin"},
    ("GET", "/v1/profiles/{profile_id}/messages"): {"read", "admin"},
}
SIGNED_ONLY = {("POST", "/v1/deliveries/callbacks/{channel}")}
CALLERS = ("none", "unknown", "revoked", "write", "read", "admin")
PREFERENCE: dict[str, str] = {}  # the preference-center token the world fixture issues
CLICK: dict[str, str] = {}  # a tracked link's token the world fixture issues
OUTBOX_ID: dict[str, str] = {}  # the message in the world's outbox
CONFIRM: dict[str, str] = {}  # a double opt-in link's token the world fixture issues


class _Sent(Channel):
    name = "email"

    def send(self, message: OutboundMessage) -> DeliveryResult:
        return DeliveryResult("sent")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, str], str, str]]:
    path: Path = tmp_path_factory.mktemp("matrix")
    storage = DuckDBStorage(path / "t.duckdb")
    keys: dict[str, str] = {}
    for kind, prov in (("write", "customer_provided"), ("read", None), ("admin", None)):
        _, secret = storage.keys.create(kind, kind, None, prov, now=NOW)
        keys[kind] = secret.reveal()
    _, revoked = storage.keys.create("admin", "old", now=NOW)
    storage.keys.revoke("old", now=NOW)
    keys["revoked"] = revoked.reveal()
    keys["unknown"] = "tk_a_not-a-key"
    # every caller calls every keyless endpoint from one client address: lift the per-client rate limit
    app = create_app(storage, load(None, env={"TAKT_SERVER__PUBLIC_BURST": "10000",
                                              "TAKT_DELIVERY__WEBHOOK_SECRETS": '{"email": "matrix-secret-0123456789"}'}),
                     FixedClock(NOW))
    dead_letters(storage).add(DeadLetter("msg_matrix", "c", 1, "0", "p_x", "marketing", "sms", "500", 1, NOW))
    app.state.ctx.extras[RESEND] = lambda letter: DeliveryResult("sent")
    outbox = Outbox(path / "outbox")
    OUTBOX_ID["id"] = outbox.store("news@x.example", ["m1@example.com"], b"Subject: hi\r\n\r\nbody\r\n")
    app.state.ctx.extras[OUTBOX] = outbox
    app.state.ctx.extras[DELIVERIES] = Deliveries({"email": _Sent()})
    with TestClient(app) as client:
        r = client.post("/v1/identify", json={"userId": "m1", "traits": {"email": "m1@example.com"}},
                        headers={"Authorization": "Basic " + base64.b64encode(f"{keys['write']}:".encode()).decode()})
        assert r.status_code == 200
        client.app.state.ctx.extras["profiles"].catch_up()
        _attach_orchestrator(client.app.state.ctx, storage)
        pid = client.get("/v1/profiles", params={"identifier": "user_id:m1"},
                         headers={"Authorization": f"Bearer {keys['read']}"}).json()["id"]
        r = client.post("/v1/segments", json={"name": "matrix", "definition": "trait.email exists"},
                        headers={"Authorization": f"Bearer {keys['admin']}"})
        assert r.status_code == 201, r.text
        r = client.post("/v1/campaigns", json={**BODIES["/v1/campaigns"], "name": "matrix"},
                        headers={"Authorization": f"Bearer {keys['admin']}"})
        assert r.status_code == 201, r.text
        link = client.get(f"/v1/profiles/{pid}/unsubscribe-link",
                          params={"channel": "email", "contact_point": "m1@example.com"},
                          headers={"Authorization": f"Bearer {keys['admin']}"}).json()
        PREFERENCE["token"] = client.get(f"/v1/profiles/{pid}/preference-link", headers={
            "Authorization": f"Bearer {keys['admin']}"}).json()["url"].rsplit("/", 1)[1]
        CLICK["token"] = seal_claims(signing_secret(storage), {"k": "click", "m": "msg_m", "p": pid, "ch": "email",
                                                               "i": "marketing", "u": "https://example.com/"})
        secret = signing_secret(storage)
        CONFIRM["token"] = seal_claims(secret, token_claims(pid, "marketing", "email",
                                                            contact_hash(secret, "email", "m1@example.com"), NOW,
                                                            NOW + timedelta(days=1)))
        yield client, keys, pid, link["url"].rsplit("/", 1)[1]
    storage.close()


def _attach_orchestrator(c: object, storage: DuckDBStorage) -> None:
    """A campaign orchestrator on the app (a recording channel; campaign "matrix"): the run endpoints answer."""
    from takt.api.campaign_runs import ORCHESTRATOR
    from takt.campaigns.delivery.base import Deliveries
    from takt.campaigns.orchestrator import Orchestrator
    from takt.policy.config import PolicySettings
    from tests.campaigns.world import Recorder, campaign

    extras = c.extras  # type: ignore[attr-defined]
    the = campaign("matrix")
    extras[ORCHESTRATOR] = Orchestrator(storage, extras["profiles"], Deliveries({"email": Recorder("email")}),
                                        PolicySettings(), lambda n, v: the if n == "matrix" else None,
                                        FixedClock(NOW), latest=lambda n: the if n == "matrix" else None)


def _campaign_ready(client: TestClient, path: str) -> None:
    """Bring campaign "matrix" into the state the action needs (launch: not running; resume: paused; the others:
    running)."""
    from takt.api.campaign_runs import ORCHESTRATOR

    orch = client.app.state.ctx.extras[ORCHESTRATOR]  # type: ignore[attr-defined]
    orch.refresh()
    run = orch.runs.runs.get("matrix")
    status = run.status if run else "never"
    if path.endswith("/launch"):
        if status in ("running", "paused"):
            orch.control("matrix", "stop")
        return
    if status in ("never", "stopped"):
        orch.launch_named("matrix")
    if path.endswith("/resume") and orch.runs.runs["matrix"].status == "running":
        orch.control("matrix", "pause")
    if not path.endswith("/resume") and orch.runs.runs["matrix"].status == "paused":
        orch.control("matrix", "resume")


def _documented() -> list[tuple[str, str]]:
    extra: dict[str, object] = {}
    for fn in app_mod.OPENAPI_PATHS:
        extra.update(fn())
    return sorted((m.upper(), p) for p, ops in document(extra)["paths"].items() for m in ops)  # type: ignore[attr-defined]


def test_the_table_covers_every_documented_endpoint() -> None:
    assert set(_documented()) == set(ALLOWED)


def _headers(caller: str, keys: dict[str, str], method: str, path: str) -> dict[str, str]:
    if caller == "none":
        return {}
    key = keys[caller]
    if path in COLLECT:  # collection endpoints take the key as HTTP Basic username
        return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}
    return {"Authorization": f"Bearer {key}"}


BODIES = {
    "/v1/privacy/export": {"identifier": "user_id:m1"},
    "/v1/privacy/erase": {"identifier": "email:nobody@example.com"},  # m1 stays for the others
    "/v1/decide": {"profile": "user_id:m1", "intent": "marketing", "channels": ["email"]},
    "/v1/consent": {"profile": "user_id:m1", "purpose": "marketing", "channel": "email",
                    "contact_point": "m1@example.com", "status": "withdrawn", "evidence": {"method": "web_form"}},
    "/v1/messages": {"profile": "user_id:m1", "message_id": "msg-1", "status": "sent", "channel": "email",
                     "contact_point": "m1@example.com", "intent": "marketing"},
    "/v1/suppression": {"kind": "email", "value": "matrix@example.com"},
    "/v1/suppression/check": {"kind": "email", "value": "matrix@example.com"},
    "/v1/offers": {"id": "matrix-offer", "title": "Matrix", "value": 1},
    "/v1/next-best-offer": {"profile": "user_id:m1", "placement": "home"},
    "/v1/segments": {"name": "matrix-new", "definition": "trait.email exists"},
    "/v1/segments/count": {"definition": "trait.email exists"},
    "/v1/segments/{name}": {"definition": "trait.email exists and trait.email from customer_provided"},
    "/v1/keys": {"kind": "write", "name": "matrix-key", "trust": "server"},
    "/v1/campaigns": {"name": "matrix-new", "intent": "marketing", "audience": {"segment": "matrix"},
                      "trigger": {"on": "now"}, "channels": ["email"],
                      "message": {"email": {"subject": "Hello", "text": "Hi {{ unsubscribe_url }}"}}},
    "/v1/campaigns/{name}": {"name": "matrix", "intent": "marketing", "audience": {"segment": "matrix"},
                             "trigger": {"on": "now"}, "channels": ["email"],
                             "message": {"email": {"subject": "Hello again", "text": "Hi {{ unsubscribe_url }}"}}},
    "/v1/consent/confirmations": {"profile": "user_id:m1", "contact_point": "m1@example.com", "purpose": "marketing"},
    **{f"/v1/campaigns/{{name}}/{a}": {} for a in ("launch", "pause", "resume", "stop")},
}


@pytest.mark.parametrize("method,path", sorted(ALLOWED))
@pytest.mark.parametrize("caller", CALLERS)
def test_exactly_the_allowed_cells_succeed(world, method: str, path: str, caller: str) -> None:
    client, keys, pid, token = world
    segment = "matrix-gone" if method == "DELETE" else "matrix"  # deleted (and re-created) on its own
    url = path.replace("{profile_id}", pid).replace("{token}", token).replace("{name}", segment)
    if "{offer_id}" in path:  # the offer exists before each call (DELETE retires it)
        client.post("/v1/offers", json=BODIES["/v1/offers"], headers={"Authorization": f"Bearer {keys['admin']}"})
        url = url.replace("{offer_id}", "matrix-offer")
    if "{key_id}" in path:  # a key to revoke exists before each call
        made = client.post("/v1/keys", json={"kind": "read", "name": "matrix-gone"},
                           headers={"Authorization": f"Bearer {keys['admin']}"})
        url = url.replace("{key_id}", made.json()["key"]["id"])
    headers = _headers(caller, keys, method, path)
    if path.startswith("/v1/campaigns/") and path.rsplit("/", 1)[1] in ("launch", "pause", "resume", "stop", "status"):
        _campaign_ready(client, path)
        url = path.replace("{name}", "matrix")
    if path == "/p/{token}":
        url = "/p/" + PREFERENCE["token"]
    if path == "/v1/r/{token}":
        url = "/v1/r/" + CLICK["token"]
    if path == "/v1/confirm/{token}":
        url = "/v1/confirm/" + CONFIRM["token"]
    url = url.replace("{channel}", "email").replace("{letter_id}", "msg_matrix")
    url = url.replace("{message_id}", OUTBOX_ID.get("id", ""))
    if method == "DELETE" and ("{offer_id}" in path or "{key_id}" in path):
        r = client.delete(url, headers=headers)
    elif method in ("PUT", "DELETE") and "{name}" in path:
        if path.startswith("/v1/campaigns"):  # the campaign exists before each call (DELETE archives it)
            client.post("/v1/campaigns", json={**BODIES["/v1/campaigns"], "name": segment},
                        headers={"Authorization": f"Bearer {keys['admin']}"})
        else:
            client.post("/v1/segments", json={"name": segment, "definition": "trait.email exists"},
                        headers={"Authorization": f"Bearer {keys['admin']}"})
        r = client.request(method, url, headers=headers, json=BODIES.get(path) if method == "PUT" else None)
    elif method == "GET":
        params = {"identifier": "user_id:m1"} if path == "/v1/profiles" else {"q": "m1"} if path.endswith("search") else (
            {"channel": "email", "contact_point": "m1@example.com"} if path.endswith("unsubscribe-link") else None)
        r = client.get(url, headers=headers, params=params, follow_redirects=False)
    else:
        body = BODIES.get(path, {"type": "track", "userId": "m1", "event": "Matrix", "messageId": f"{caller}{path}",
                                 "previousId": "anon-m1", "groupId": "g1"})
        if path in ("/v1/batch", "/v1/b", "/b", "/v1/import"):
            body = {"batch": [body]}
        r = client.post(url, headers=headers, json=body)
    if (method, path) == ("POST", "/p/{token}"):  # the page's form post carries its token
        r = client.post(url, headers=headers, data={"token": PREFERENCE["token"]})
    if (method, path) in SIGNED_ONLY:
        assert r.status_code == 401, f"{caller} on {method} {path}: {r.status_code}"
    elif caller in ALLOWED[(method, path)]:
        redirected = path == "/v1/r/{token}" and r.status_code == 302
        assert r.status_code < 300 or redirected, f"{caller} on {method} {path}: {r.status_code} {r.text[:200]}"
    elif caller in ("none", "unknown", "revoked"):
        assert r.status_code == 401, f"{caller} on {method} {path}: {r.status_code}"
    else:
        assert r.status_code == 403, f"{caller} on {method} {path}: {r.status_code}"
