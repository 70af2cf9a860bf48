"""New needs across devices end to end (issue 13, item 6): weeks of Krabi on the laptop, New York on the phone
while anonymous, then a login on the phone; the runner appends one ``interest_shifted`` event to the log, and
a rebuild derives it again with the same id (the log keeps it once)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from takt.api.app import create_app
from takt.clock import FixedClock
from takt.profiles.derived import INTEREST_SHIFTED, derived_message_id
from takt.settings import load
from takt.storage.duckdb import DuckDBStorage

NOW = datetime(2026, 11, 12, 12, 0, tzinfo=UTC)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[TestClient, DuckDBStorage, dict[str, str]]]:
    storage = DuckDBStorage(tmp_path / "t.duckdb")
    keys = {}
    for kind, name, prov in [("write", "website", "customer_provided"), ("read", "reader", None)]:
        _, secret = storage.keys.create(kind, name, None, prov, now=NOW)
        keys[name] = secret.reveal()
    app = create_app(storage, load(None, env={}), FixedClock(NOW))
    with TestClient(app) as client:
        yield client, storage, keys
    storage.close()


def search(i: int, anon: str, when: str, key: str) -> dict[str, object]:
    return {"type": "track", "event": "Products Searched", "anonymousId": anon, "messageId": f"s-{i}",
            "timestamp": when, "properties": {"query": key.split(":")[1], "interests": [key]}}


def test_login_on_a_second_device_appends_one_interest_shifted_event(world) -> None:
    client, storage, keys = world
    web = {"Authorization": "Basic " + base64.b64encode(f"{keys['website']}:".encode()).decode()}
    runner = client.app.state.ctx.extras["profiles"]

    def post(batch: list[dict[str, object]]) -> None:
        assert client.post("/v1/batch", headers=web, json={"batch": batch}).status_code == 200
        runner.catch_up()

    # October: four weeks of Krabi on the laptop, then a login there
    post([search(i, "laptop", f"2026-10-{1 + 7 * i:02d}T19:00:00Z", "destination:krabi") for i in range(5)])
    post([{"type": "identify", "anonymousId": "laptop", "userId": "ann", "messageId": "login-laptop",
           "timestamp": "2026-10-30T19:00:00Z"}])
    # November: New York on the phone, not logged in
    post([search(10 + i, "phone", f"2026-11-{7 + i:02d}T20:00:00Z", "destination:new-york") for i in range(4)])
    assert [e for e in storage.log.iter() if e.event.kind == INTEREST_SHIFTED] == []
    # the login on the phone joins the two devices
    post([{"type": "identify", "anonymousId": "phone", "userId": "ann", "messageId": "login-phone",
           "timestamp": "2026-11-11T20:00:00Z"}])

    reader = {"Authorization": f"Bearer {keys['reader']}"}
    p = client.get("/v1/profiles", params={"identifier": "user_id:ann"}, headers=reader).json()
    assert "anonymous_id:phone" in p["identifiers"] and "anonymous_id:laptop" in p["identifiers"]
    assert p["top_interest"] == "destination:new-york"
    shifted = [e for e in storage.log.iter() if e.event.kind == INTEREST_SHIFTED]
    assert len(shifted) == 1
    (shift,) = shifted
    props = shift.event.properties
    assert (props["from"], props["to"], props["profile_id"]) == ("destination:krabi", "destination:new-york", p["id"])
    assert props["cause"]["message_id"] == "login-phone"
    assert shift.event.message_id == derived_message_id(INTEREST_SHIFTED, p["id"], props["cause"]["source"],
                                                        "login-phone")

    # a rebuild folds the log again: the same id, stored once
    count = storage.log.count()
    runner.rebuild()
    runner.catch_up()
    assert storage.log.count() == count
    assert [e.event.message_id for e in storage.log.iter() if e.event.kind == INTEREST_SHIFTED] == \
        [shift.event.message_id]
