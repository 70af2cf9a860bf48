"""Issue 11 story 2 over HTTP: events of trust ``public`` (written to the log as the public keys will write them)
never hijack a customer; the attacker's address is a claim on his own profile and never chosen by decide."""

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
from takt.events.model import Event
from takt.settings import load
from takt.storage.duckdb import DuckDBStorage

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
AT = "2026-11-20T10:00:00Z"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, DuckDBStorage, dict[str, str], Any]]:
    storage = DuckDBStorage(tmp_path / "t.duckdb")
    keys = {}
    for kind, name, prov in [("write", "website", "customer_provided"), ("read", "reader", None)]:
        _, secret = storage.keys.create(kind, name, None, prov, now=NOW)
        keys[name] = secret.reveal()
    app = create_app(storage, load(None, env={}), FixedClock(NOW))
    with TestClient(app) as client:
        yield client, storage, keys, app
    storage.close()


def public_identify(mid: str, anon: str, email: str) -> Event:
    at = datetime(2026, 11, 19, 12, 0, tzinfo=UTC)
    return Event(kind="identify", message_id=mid, source="website", timestamp=at, received_at=at,
                 provenance="customer_provided", trust="public", anonymous_id=anon, traits={"email": email})


def test_a_public_email_claim_does_not_hijack_the_customer_over_http(api: Any) -> None:
    client, storage, keys, app = api
    write = {"Authorization": "Basic " + base64.b64encode(f"{keys['website']}:".encode()).decode()}
    read = {"Authorization": f"Bearer {keys['reader']}"}
    r = client.post("/v1/identify", headers=write, json={"userId": "v2", "messageId": "v2-1",
                                                         "traits": {"email": "v2@example.com"}})
    assert r.status_code == 200, r.text
    storage.log.append([public_identify("att-1", "att", "v2@example.com"),
                        public_identify("att-2", "att", "attacker@evil.example")])
    app.state.ctx.extras["profiles"].catch_up()

    v2 = client.get("/v1/profiles", params={"identifier": "user_id:v2"}, headers=read).json()
    att = client.get("/v1/profiles", params={"identifier": "anonymous_id:att"}, headers=read).json()
    assert v2["id"] != att["id"]
    assert [(c["value"], c["claim"]) for c in v2["contact_points"]] == [("v2@example.com", False)]
    assert sorted((c["value"], c["claim"], c["trust"]) for c in att["contact_points"]) == [
        ("attacker@evil.example", True, "public"), ("v2@example.com", True, "public")]

    def decide(profile: str, intent: str) -> dict[str, Any]:
        r = client.post("/v1/decide", headers=read,
                        json={"profile": profile, "intent": intent, "channels": ["email"], "at": AT})
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    for intent in ("transactional", "service"):
        d = decide("user_id:v2", intent)
        assert d["allowed"] is True and d["contact_point"] == "v2@example.com"
        d = decide("anonymous_id:att", intent)
        assert d["allowed"] is False
        assert "claimed_contact_point" in {r["code"] for r in d["reasons"]}
