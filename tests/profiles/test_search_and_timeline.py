"""Finding a customer by name or a partial identifier (issue 12.9) and the timeline in time order (12.11)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from takt.api.app import create_app
from takt.clock import FixedClock
from takt.settings import load
from takt.storage.duckdb import DuckDBStorage

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, DuckDBStorage, dict[str, str]]]:
    storage = DuckDBStorage(tmp_path / "t.duckdb")
    keys: dict[str, str] = {}
    for kind, prov in (("write", "customer_provided"), ("read", None), ("admin", None)):
        _, secret = storage.keys.create(kind, kind, None, prov, now=NOW)
        keys[kind] = secret.reveal()
    app = create_app(storage, load(None, env={}), FixedClock(NOW))
    with TestClient(app) as client:
        basic = {"Authorization": "Basic " + base64.b64encode(f"{keys['write']}:".encode()).decode()}
        batch = [
            {"type": "identify", "userId": "ann", "traits": {"email": "ann.lindqvist@example.com",
                                                               "name": "Ann Lindqvist"},
             "timestamp": "2026-11-01T10:00:00Z", "messageId": "m1"},
            {"type": "identify", "userId": "bob", "traits": {"email": "bob@example.org", "name": "Bob Berg"},
             "timestamp": "2026-11-02T10:00:00Z", "messageId": "m2"},
            {"type": "track", "userId": "ann", "event": "Order Completed", "timestamp": "2026-11-20T10:00:00Z",
             "messageId": "m3"},
            # sent later (an import of old orders): a higher log position, an older event time
            {"type": "track", "userId": "ann", "event": "Order Completed", "timestamp": "2025-01-05T10:00:00Z",
             "messageId": "m4"},
            {"type": "track", "userId": "ann", "event": "Product Viewed", "timestamp": "2026-11-10T10:00:00Z",
             "messageId": "m5"},
        ]
        for item in batch:
            assert client.post("/v1/batch", json={"batch": [item]}, headers=basic).status_code == 200
        client.app.state.ctx.extras["profiles"].catch_up()  # type: ignore[attr-defined]
        yield client, storage, keys
    storage.close()


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _search(client: TestClient, key: str, **params: Any) -> Any:
    r = client.get("/v1/profiles/search", params=params, headers=_bearer(key))
    assert r.status_code == 200, r.text
    return r.json()


def test_search_finds_by_name_and_partial_identifier_case_insensitively(api: Any) -> None:
    client, _, keys = api
    by_name = _search(client, keys["read"], q="lindq")
    assert [m["name"] for m in by_name["profiles"]] == ["Ann Lindqvist"]
    assert {"field": "trait:name", "value": "Ann Lindqvist"} in by_name["profiles"][0]["matched"]
    by_domain = _search(client, keys["admin"], q="EXAMPLE.ORG")
    assert [m["name"] for m in by_domain["profiles"]] == ["Bob Berg"]
    assert _search(client, keys["read"], q="user_id:bo")["profiles"][0]["name"] == "Bob Berg"
    assert _search(client, keys["read"], q="nobody-like-this")["profiles"] == []
    ann = by_name["profiles"][0]["id"]
    assert _search(client, keys["read"], q=ann)["profiles"][0]["id"] == ann  # a whole profile id too


def test_search_pages_with_a_limit(api: Any) -> None:
    client, _, keys = api
    first = _search(client, keys["read"], q="example", limit=1)
    assert len(first["profiles"]) == 1 and first["next_after"]
    second = _search(client, keys["read"], q="example", limit=1, after=first["next_after"])
    assert len(second["profiles"]) == 1 and second["next_after"] is None
    assert first["profiles"][0]["id"] < second["profiles"][0]["id"]


def test_search_needs_a_read_key_a_query_and_is_audited(api: Any) -> None:
    client, _, keys = api
    assert client.get("/v1/profiles/search", params={"q": "ann"}).status_code == 401
    assert client.get("/v1/profiles/search", params={"q": "ann"}, headers={
        "Authorization": "Basic " + base64.b64encode(f"{keys['write']}:".encode()).decode()}).status_code in (401, 403)
    r = client.get("/v1/profiles/search", params={"q": ""}, headers=_bearer(keys["read"]))
    assert r.status_code == 400
    found = _search(client, keys["read"], q="ann")["profiles"]
    entries = client.get("/v1/audit", params={"action": "profile.search"}, headers=_bearer(keys["admin"])).json()
    assert {e["subject"] for e in entries["entries"]} >= {p["id"] for p in found}


def test_timeline_is_in_event_time_order_newest_first_with_positions(api: Any) -> None:
    client, _, keys = api
    pid = _search(client, keys["read"], q="lindq")["profiles"][0]["id"]
    seen: list[dict[str, Any]] = []
    url: str | None = f"/v1/profiles/{pid}/timeline?limit=2"
    while url:
        body = client.get(url, headers=_bearer(keys["read"])).json()
        seen.extend(body["events"])
        url = body["next"]
    times = [e["timestamp"] for e in seen]
    assert times == sorted(times, reverse=True) and len(seen) == 4
    assert [e["messageId"] for e in seen] == ["m3", "m5", "m1", "m4"]
    assert all(isinstance(e["position"], int) for e in seen)
