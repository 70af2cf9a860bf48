"""The endpoints that need no key (unsubscribe links, the preference center): rate-limited per client address
with 429 and Retry-After, and idempotent per link."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from takt.api.app import create_app
from takt.api.ratelimit import RateLimiter
from takt.clock import FixedClock
from takt.settings import load
from takt.storage.duckdb import DuckDBStorage

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
EMAIL = "ann.public@example.com"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    storage = DuckDBStorage(tmp_path / "t.duckdb")
    keys: dict[str, str] = {}
    for kind, prov in (("write", "customer_provided"), ("admin", None)):
        _, secret = storage.keys.create(kind, kind, None, prov, now=NOW)
        keys[kind] = secret.reveal()
    clock = FixedClock(NOW)
    env = {"TAKT_SERVER__PUBLIC_RATE_PER_MINUTE": "6", "TAKT_SERVER__PUBLIC_BURST": "3"}
    with TestClient(create_app(storage, load(None, env=env), clock)) as client:
        write = {"Authorization": "Basic " + base64.b64encode(f"{keys['write']}:".encode()).decode()}
        admin = {"Authorization": f"Bearer {keys['admin']}"}
        assert client.post("/v1/identify", headers=write, json={"userId": "ann", "traits": {"email": EMAIL}}
                           ).status_code == 200
        client.app.state.ctx.extras["profiles"].catch_up()  # type: ignore[attr-defined]
        pid = client.get("/v1/profiles", params={"identifier": "user_id:ann"}, headers=admin).json()["id"]
        unsub = client.get(f"/v1/profiles/{pid}/unsubscribe-link", params={"contact_point": EMAIL},
                           headers=admin).json()["url"]
        pref = client.get(f"/v1/profiles/{pid}/preference-link", headers=admin).json()["url"]
        yield {"client": client, "storage": storage, "clock": clock, "admin": admin, "write": write,
               "unsub": "/v1/unsubscribe/" + unsub.rsplit("/", 1)[1], "pref": "/p/" + pref.rsplit("/", 1)[1]}
    storage.close()


@pytest.mark.parametrize("which", ["unsub", "pref"])
def test_a_client_over_its_budget_gets_429_with_retry_after(world: dict[str, Any], which: str) -> None:
    client: TestClient = world["client"]
    path = world[which]
    assert [client.get(path).status_code for _ in range(3)] == [200, 200, 200]  # the burst
    r = client.get(path)
    assert r.status_code == 429 and r.json()["code"] == "rate_limited"
    assert int(r.headers["Retry-After"]) == 10  # 6 a minute: one token every 10 s
    world["clock"].advance(seconds=10)
    assert client.get(path).status_code == 200
    assert client.get(path).status_code == 429
    # keyed endpoints are not limited by it
    assert client.get("/v1/events/count", headers=world["admin"]).status_code == 200


def test_buckets_are_per_client_and_bounded() -> None:
    clock = FixedClock(NOW)
    limiter = RateLimiter(clock, per_minute=60, burst=2, max_clients=3)
    assert [limiter.take("a"), limiter.take("a")] == [0.0, 0.0]
    assert limiter.take("a") == pytest.approx(1.0)
    assert limiter.take("b") == 0.0  # another address has its own bucket
    for other in ("c", "d", "e"):
        limiter.take(other)
    assert len(limiter._buckets) == 3  # the least recently seen are forgotten
    clock.advance(seconds=0.5)
    assert limiter.take("e") == 0.0


def test_a_second_click_of_the_same_link_records_nothing_new_and_shows_the_same_page(world: dict[str, Any]) -> None:
    client: TestClient = world["client"]
    storage = world["storage"]
    first = client.post(world["unsub"])
    assert first.status_code == 200, first.text
    n = storage.log.count()
    world["clock"].advance(seconds=30)  # a later click (a mail client retrying, a second tap)
    again = client.post(world["unsub"])
    assert again.status_code == 200 and again.json() == first.json()
    assert storage.log.count() == n
    html = {"accept": "text/html"}
    world["clock"].advance(seconds=30)
    a, b = client.post(world["unsub"], headers=html), client.post(world["unsub"], headers=html)
    assert a.text == b.text and storage.log.count() == n
    # after a new grant by the customer, the same link withdraws again (an unsubscribe is always honoured)
    assert client.post("/v1/track", headers=world["write"], json={
        "userId": "ann", "event": "Consent Updated", "properties": {
            "purpose": "marketing", "channel": "email", "contact_point": EMAIL, "status": "granted",
            "evidence": {"method": "double_opt_in"}}}).status_code == 200
    world["clock"].advance(seconds=30)
    n = storage.log.count()
    assert client.post(world["unsub"]).status_code == 200
    assert storage.log.count() == n + 1
    decide = client.post("/v1/decide", headers=world["admin"], json={
        "profile": "user_id:ann", "intent": "marketing", "channels": ["email"]}).json()
    assert "withdrawn" in {x["code"] for x in decide["rejected"]["email"]}
