"""Public and server write keys over HTTP: each event carries its key's trust; a public key's identity claim
becomes "verified" only with a valid context.userHash (the workspace's verification secret)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from takt.api.app import create_app
from takt.settings import load
from takt.storage.duckdb import DuckDBStorage
from takt.workspace import verification_secret, verification_secret_path


@pytest.fixture
def env(tmp_path: Path, clock) -> Iterator[tuple[TestClient, DuckDBStorage, dict[str, str], str]]:
    storage = DuckDBStorage(tmp_path / "t.duckdb")
    keys = {}
    for name, trust in (("browser", "public"), ("backend", "server")):
        _, secret = storage.keys.create("write", name, None, "customer_provided", now=clock(), trust=trust)
        keys[name] = secret.reveal()
    with TestClient(create_app(storage, load(None, env={}), clock)) as client:
        yield client, storage, keys, verification_secret(storage.anchor)
    storage.close()


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def sign(secret: str, user_id: str) -> str:  # what the customer's backend does, written out independently
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def stored(storage: DuckDBStorage) -> list[tuple[str | None, str]]:
    return [(r.event.user_id or r.event.anonymous_id, r.event.trust) for r in storage.log.read()]


def test_a_public_keys_event_is_a_claim_and_a_server_keys_is_the_companys(env) -> None:
    client, storage, keys, _ = env
    assert client.post("/v1/track", headers=basic(keys["browser"]), json={"userId": "u1", "event": "A"}).status_code == 200
    assert client.post("/v1/track", headers=basic(keys["backend"]), json={"userId": "u2", "event": "A"}).status_code == 200
    assert stored(storage) == [("u1", "public"), ("u2", "server")]


def test_a_public_key_in_the_body_is_public_too(env) -> None:
    client, storage, keys, _ = env
    r = client.post("/v1/page", json={"writeKey": keys["browser"], "anonymousId": "a1", "name": "Home"})
    assert r.status_code == 200
    assert stored(storage) == [("a1", "public")]


def test_a_valid_user_hash_makes_a_public_event_verified(env) -> None:
    client, storage, keys, secret = env
    r = client.post("/v1/identify", headers=basic(keys["browser"]),
                    json={"userId": "u1", "traits": {"email": "u1@example.com"},
                          "context": {"userHash": sign(secret, "u1")}})
    assert r.status_code == 200, r.text
    (row,) = storage.log.read()
    assert row.event.trust == "verified" and "userHash" not in row.event.context


def test_a_bad_user_hash_is_refused_naming_the_problem_and_nothing_is_stored(env) -> None:
    client, storage, keys, secret = env
    batch = {"batch": [
        {"type": "track", "userId": "u1", "event": "A", "context": {"userHash": sign(secret, "u1")}},
        {"type": "identify", "userId": "victim", "traits": {"email": "attacker@example.com"},
         "context": {"userHash": sign(secret, "u1")}},
    ]}
    r = client.post("/v1/batch", headers=basic(keys["browser"]), json=batch)
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == "invalid_batch"
    assert body["errors"][0]["index"] == 1 and body["errors"][0]["field"] == "context.userHash"
    assert "does not match the userId" in body["errors"][0]["reason"]
    r = client.post("/v1/track", headers=basic(keys["browser"]),
                    json={"userId": "u1", "event": "A", "context": {"userHash": "0" * 64}})
    assert r.status_code == 400 and "userHash" in r.json()["errors"][0]["field"]
    assert storage.log.count() == 0


def test_a_hash_signed_with_another_secret_is_refused(env) -> None:
    client, storage, keys, _ = env
    r = client.post("/v1/track", headers=basic(keys["browser"]),
                    json={"userId": "u1", "event": "A", "context": {"userHash": sign("tk_v_" + "0" * 64, "u1")}})
    assert r.status_code == 400 and storage.log.count() == 0


def test_a_public_client_cannot_raise_its_own_trust(env) -> None:
    client, storage, keys, _ = env
    r = client.post("/v1/track", headers=basic(keys["browser"]),
                    json={"userId": "u1", "event": "A", "trust": "server",
                          "context": {"trust": "server"}})
    assert r.status_code == 200
    (row,) = storage.log.read()
    assert row.event.trust == "public"


def test_server_keys_ignore_the_user_hash(env) -> None:
    client, storage, keys, _ = env
    r = client.post("/v1/track", headers=basic(keys["backend"]),
                    json={"userId": "u1", "event": "A", "context": {"userHash": "not-checked"}})
    assert r.status_code == 200
    (row,) = storage.log.read()
    assert row.event.trust == "server" and "userHash" not in row.event.context


def test_the_verification_secret_is_stable_and_readable_by_its_owner_only(env, tmp_path: Path) -> None:
    _, storage, _, secret = env
    path = verification_secret_path(storage.anchor)
    assert path == tmp_path / "t.duckdb.verification-secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert verification_secret(storage.anchor) == secret and secret.startswith("tk_v_") and len(secret) == 69
