"""The Segment-compatible collection API, end to end through the ASGI app (DuckDB backend)."""

from __future__ import annotations

import base64
import gzip
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from starlette.testclient import TestClient

from takt.api.app import create_app
from takt.settings import load
from takt.storage.duckdb import DuckDBStorage


@pytest.fixture
def env(tmp_path: Path, clock) -> Iterator[tuple[TestClient, DuckDBStorage, dict[str, str]]]:
    storage = DuckDBStorage(tmp_path / "t.duckdb")
    keys = {}
    for kind, name, prov in [("write", "website", "customer_provided"), ("write", "vendor", "third_party"),
                             ("read", "reader", None), ("admin", "admin", None)]:
        _, secret = storage.keys.create(kind, name, None, prov, now=clock())
        keys[name] = secret.reveal()
    app = create_app(storage, load(None, env={}), clock)
    with TestClient(app) as client:
        yield client, storage, keys
    storage.close()


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def test_track_is_stored_with_source_and_provenance(env) -> None:
    client, storage, keys = env
    r = client.post("/v1/track", headers=basic(keys["website"]),
                    json={"userId": "u1", "event": "Order Completed", "messageId": "abc",
                          "properties": {"revenue": 12.5}})
    assert r.status_code == 200 and r.json() == {"success": True}
    (row,) = storage.log.read()
    assert row.event.kind == "track" and row.event.event == "Order Completed"
    assert row.event.source == "website" and row.event.provenance == "customer_provided"
    assert row.event.properties == {"revenue": 12.5}


def test_retry_stores_nothing_new(env) -> None:
    client, storage, keys = env
    body = {"userId": "u1", "event": "X", "messageId": "same"}
    for _ in range(3):
        assert client.post("/v1/t", headers=basic(keys["website"]), json=body).status_code == 200
    assert storage.log.count() == 1


def test_write_key_in_body_and_text_plain(env) -> None:
    client, storage, keys = env
    body = orjson.dumps({"writeKey": keys["website"], "anonymousId": "a1", "type": "page", "name": "Home"})
    r = client.post("/v1/p", content=body, headers={"Content-Type": "text/plain"})
    assert r.status_code == 200
    (row,) = storage.log.read()
    assert row.event.kind == "page" and row.event.name == "Home" and row.event.anonymous_id == "a1"


def test_batch_merges_top_level_context_and_integrations(env) -> None:
    client, storage, keys = env
    r = client.post("/v1/batch", headers=basic(keys["website"]), json={
        "context": {"library": {"name": "x"}, "ip": "1.2.3.4"},
        "integrations": {"All": True},
        "batch": [
            {"type": "identify", "userId": "u1", "traits": {"email": "A@x.com"}, "messageId": "1"},
            {"type": "track", "userId": "u1", "event": "E", "messageId": "2", "context": {"ip": "5.6.7.8"}},
        ],
    })
    assert r.status_code == 200
    first, second = (row.event for row in storage.log.read())
    assert first.context == {"library": {"name": "x"}, "ip": "1.2.3.4"}
    assert second.context["ip"] == "5.6.7.8" and second.context["library"] == {"name": "x"}
    assert first.integrations == {"All": True}


def test_batch_with_an_invalid_item_stores_nothing(env) -> None:
    client, storage, keys = env
    r = client.post("/v1/batch", headers=basic(keys["website"]), json={"batch": [
        {"type": "track", "userId": "u1", "event": "ok"},
        {"type": "track", "userId": "u1"},
        {"type": "identify"},
        {"type": "bogus", "userId": "u"},
    ]})
    assert r.status_code == 400
    body = r.json()
    assert body["success"] is False and body["code"] == "invalid_batch"
    assert [e["index"] for e in body["errors"]] == [1, 2, 3]
    assert "event" in body["errors"][0]["reason"]
    assert storage.log.count() == 0


@pytest.mark.parametrize("payload,code", [
    (b"{not json", "malformed_json"),
    (b"", "malformed_json"),
    (b"[1,2]", "invalid_event"),
    (orjson.dumps({"event": "x"}), "invalid_event"),
    (orjson.dumps({"userId": "u", "event": ""}), "invalid_event"),
    (orjson.dumps({"userId": "u", "event": "x", "properties": [1]}), "invalid_event"),
    (orjson.dumps({"userId": "u", "event": "x", "messageId": "m" * 101}), "invalid_event"),
    (orjson.dumps({"userId": "u", "event": "x", "messageId": 5}), "invalid_event"),
    (orjson.dumps({"userId": "u", "event": "x", "timestamp": "yesterday"}), "invalid_event"),
    (orjson.dumps({"userId": "u\u0000x", "event": "x"}), "invalid_event"),
    (orjson.dumps({"userId": "u", "event": "x", "messageId": "a\u0000"}), "invalid_event"),
    (orjson.dumps({"userId": "u", "event": "x", "properties": {"b": "x" * 40_000}}), "invalid_event"),
])
def test_bad_input_gets_400_with_code_and_message(env, payload: bytes, code: str) -> None:
    client, storage, keys = env
    r = client.post("/v1/track", headers={**basic(keys["website"]), "Content-Type": "application/json"},
                    content=payload)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] == code and body["message"]
    assert storage.log.count() == 0


def test_limits_request_size_and_batch_count(env) -> None:
    client, storage, keys = env
    big = {"batch": [{"type": "track", "userId": "u", "event": "e", "properties": {"p": "x" * 1000}}] * 600}
    r = client.post("/v1/batch", headers=basic(keys["website"]), json=big)
    assert r.status_code == 400 and r.json()["code"] == "too_large"
    many = {"batch": [{"type": "track", "userId": "u", "event": "e", "messageId": str(i)} for i in range(2501)]}
    r = client.post("/v1/batch", headers=basic(keys["website"]), json=many)
    assert r.status_code == 400 and r.json()["code"] == "too_large"
    assert storage.log.count() == 0


def test_gzip_bodies_and_gzip_bombs(env) -> None:
    client, storage, keys = env
    body = gzip.compress(orjson.dumps({"userId": "u", "event": "zipped"}))
    r = client.post("/v1/track", content=body,
                    headers={**basic(keys["website"]), "Content-Encoding": "gzip", "Content-Type": "text/plain"})
    assert r.status_code == 200
    bomb = gzip.compress(b"{" + b" " * 50_000_000 + b"}", compresslevel=9)
    assert len(bomb) < 100_000
    r = client.post("/v1/batch", content=bomb, headers={**basic(keys["website"]), "Content-Encoding": "gzip"})
    assert r.status_code == 400 and r.json()["code"] == "too_large"
    r = client.post("/v1/track", content=b"not gzip", headers={**basic(keys["website"]), "Content-Encoding": "gzip"})
    assert r.status_code == 400
    assert storage.log.count() == 1


def test_auth(env) -> None:
    client, storage, keys = env
    body = {"userId": "u", "event": "e"}
    assert client.post("/v1/track", json=body).status_code == 401
    assert client.post("/v1/track", json=body, headers=basic("tk_w_unknown")).status_code == 401
    r = client.post("/v1/track", json=body, headers=basic(keys["reader"]))
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    r = client.post("/v1/track", json=body, headers={"Authorization": f"Bearer {keys['admin']}"})
    assert r.status_code == 401
    assert storage.log.count() == 0


def test_revoked_key_is_refused(env, clock) -> None:
    client, storage, keys = env
    storage.keys.revoke("website", now=clock())
    client.app.state.ctx.auth.forget()
    r = client.post("/v1/track", json={"userId": "u", "event": "e"}, headers=basic(keys["website"]))
    assert r.status_code == 401 and "revoked" in r.json()["message"]


def test_event_cannot_raise_its_provenance(env) -> None:
    client, storage, keys = env
    client.post("/v1/track", headers=basic(keys["vendor"]),
                json={"userId": "u", "event": "e", "messageId": "1", "context": {"provenance": "customer_provided"}})
    client.post("/v1/track", headers=basic(keys["website"]),
                json={"userId": "u", "event": "e", "messageId": "2", "context": {"provenance": "third_party"}})
    a, b = (r.event for r in storage.log.read())
    assert a.provenance == "third_party" and b.provenance == "third_party"


def test_clock_skew_correction_and_client_timestamp(env, clock) -> None:
    client, storage, keys = env
    client.post("/v1/track", headers=basic(keys["website"]), json={
        "userId": "u", "event": "skewed", "messageId": "1",
        "originalTimestamp": "2026-11-24T13:00:00Z", "sentAt": "2026-11-24T13:00:05Z"})
    client.post("/v1/track", headers=basic(keys["website"]), json={
        "userId": "u", "event": "historical", "messageId": "2", "timestamp": "2025-01-01T00:00:00Z",
        "sentAt": "2026-11-24T13:00:05Z"})
    a, b = (r.event for r in storage.log.read())
    # the device's clock is an hour ahead: timestamp = receivedAt - (sentAt - originalTimestamp)
    assert a.timestamp.isoformat() == "2026-11-24T11:59:55+00:00"
    assert a.received_at == clock()
    assert b.timestamp.isoformat() == "2025-01-01T00:00:00+00:00"


def test_cors_preflight_allows_authorization(env) -> None:
    client, _, _ = env
    r = client.options("/v1/t", headers={
        "Origin": "https://shop.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert r.status_code == 200
    assert "authorization" in r.headers["access-control-allow-headers"].lower()


def test_health_openapi_and_unknown_paths(env) -> None:
    client, _, _ = env
    assert client.get("/health").json()["status"] == "ok"
    doc = client.get("/openapi.json").json()
    assert "/v1/batch" in doc["paths"] and "/v1/t" in doc["paths"]
    r = client.get("/nope")
    assert r.status_code == 404 and r.json()["code"] == "not_found"


def test_read_events_needs_read_key(env) -> None:
    client, storage, keys = env
    client.post("/v1/track", headers=basic(keys["website"]), json={"userId": "u", "event": "e"})
    assert client.get("/v1/events").status_code == 401
    assert client.get("/v1/events", headers={"Authorization": f"Bearer {keys['website']}"}).status_code == 403
    r = client.get("/v1/events/count", headers={"Authorization": f"Bearer {keys['reader']}"})
    assert r.json()["count"] == 1
    r = client.get("/v1/events?after=0&limit=5", headers={"Authorization": f"Bearer {keys['admin']}"})
    assert r.json()["events"][0]["event"] == "e" and r.json()["events"][0]["position"] >= 1
    assert client.get("/v1/events?limit=abc", headers={"Authorization": f"Bearer {keys['admin']}"}).status_code == 400
