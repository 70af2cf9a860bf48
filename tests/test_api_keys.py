"""Keys managed while serving: POST/GET/DELETE /v1/keys (admin keys only); a secret is shown once; a revoked key
is refused by the next request."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from takt.api.app import create_app
from takt.settings import load
from takt.storage.duckdb import DuckDBStorage


@pytest.fixture
def env(tmp_path: Path, clock) -> Iterator[tuple[TestClient, DuckDBStorage, dict[str, str]]]:
    storage = DuckDBStorage(tmp_path / "t.duckdb")
    _, admin = storage.keys.create("admin", "ops", now=clock())
    with TestClient(create_app(storage, load(None, env={}), clock)) as client:
        yield client, storage, {"Authorization": f"Bearer {admin.reveal()}"}
    storage.close()


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def test_create_list_revoke_and_the_revoked_key_is_refused_at_once(env) -> None:
    client, storage, admin = env
    r = client.post("/v1/keys", headers=admin, json={"kind": "write", "name": "website",
                                                     "provenance": "customer_provided"})
    assert r.status_code == 201, r.text
    created, secret = r.json()["key"], r.json()["secret"]
    assert created["trust"] == "public" and created["source"] == "website" and created["active"]
    assert secret.startswith("tk_w_") and secret not in created["id"]
    ok = client.post("/v1/track", headers=basic(secret), json={"userId": "u1", "event": "A"})
    assert ok.status_code == 200  # resolved, and now cached by the server

    listed = client.get("/v1/keys", headers=admin)
    assert listed.status_code == 200
    assert {k["name"]: k["trust"] for k in listed.json()["keys"]} == {"ops": None, "website": "public"}
    assert secret not in listed.text and "key_hash" not in listed.text

    r = client.delete(f"/v1/keys/{created['id']}", headers=admin)
    assert r.status_code == 200 and r.json()["key"]["active"] is False and r.json()["key"]["revoked_at"]
    refused = client.post("/v1/track", headers=basic(secret), json={"userId": "u1", "event": "B"})
    assert refused.status_code == 401 and "revoked" in refused.json()["message"]
    assert storage.log.count() == 1


def test_a_server_key_on_request_and_its_events_are_the_companys(env) -> None:
    client, storage, admin = env
    r = client.post("/v1/keys", headers=admin, json={"kind": "write", "name": "crm", "trust": "server",
                                                     "provenance": "crm_import"})
    assert r.status_code == 201 and r.json()["key"]["trust"] == "server"
    assert client.post("/v1/identify", headers=basic(r.json()["secret"]), json={"userId": "u1"}).status_code == 200
    assert [e.event.trust for e in storage.log.read()] == ["server"]


@pytest.mark.parametrize("body,field", [
    ({"kind": "write", "name": "w", "trust": "verified"}, "trust"),
    ({"kind": "read", "name": "r", "trust": "public"}, "trust"),
    ({"kind": "root", "name": "x"}, "kind"),
    ({"name": "x"}, "kind"),
    ({"kind": "read", "name": "x", "secret": "mine"}, "secret"),
])
def test_invalid_requests_are_refused_naming_the_problem(env, body, field) -> None:
    client, storage, admin = env
    r = client.post("/v1/keys", headers=admin, json=body)
    assert r.status_code == 400 and field in r.text
    assert [k.name for k in storage.keys.list()] == ["ops"]


def test_revoking_an_unknown_key_or_the_last_admin_key(env) -> None:
    client, storage, admin = env
    assert client.delete("/v1/keys/key_nope", headers=admin).status_code == 404
    assert client.delete("/v1/keys/ops", headers=admin).status_code == 404  # ids only: a name may name several
    (ops,) = storage.keys.list()
    r = client.delete(f"/v1/keys/{ops.id}", headers=admin)
    assert r.status_code == 409 and "last active admin key" in r.json()["message"]
    other = client.post("/v1/keys", headers=admin, json={"kind": "admin", "name": "ops2"}).json()
    assert client.delete(f"/v1/keys/{ops.id}", headers=admin).status_code == 200
    assert client.get("/v1/keys", headers=admin).status_code == 401  # the revoked admin key, refused at once
    assert client.get("/v1/keys", headers={"Authorization": f"Bearer {other['secret']}"}).status_code == 200
