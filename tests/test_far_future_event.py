"""A far-future (or far-past) event already in the log — written before the plausible-time window existed, or
by a path that still allows it — cannot break profile reads, live segments, segment counts or erasure
(issue 11 item 3). The events are written straight into the log, as an old log holds them."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from takt import workspace as ws_mod
from takt.api.app import create_app
from takt.clock import FixedClock
from takt.events.model import Event

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
FAR_FUTURE = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
FAR_PAST = datetime(1, 1, 1, tzinfo=UTC)
SEGMENTS = {
    "bought": 'count(track "Order Completed") >= 1',
    "recent": "last_seen within 30d",
    "week": 'count(track "Order Completed" in last 7d) >= 1',
    "revenue": 'sum(track "Order Completed".revenue) > 10',
    "into-x": 'interest("topic:x") > 0.1',
    "later": "first_seen after 2026-01-01",
}


def event(mid: str, ts: datetime, **kw: object) -> Event:
    return Event(kind="track", message_id=mid, source="old-import", timestamp=ts, received_at=NOW,
                 provenance="crm_import", user_id="far", event="Order Completed",
                 properties={"revenue": 20, "interest": "topic:x"}, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("when", [FAR_FUTURE, FAR_PAST], ids=["future", "past"])
def test_far_event_then_profile_live_segments_counts_and_erasure(tmp_path: Path, when: datetime) -> None:
    ws = ws_mod.init(tmp_path / "ws")
    storage = ws.open_storage()
    try:
        _, w = storage.keys.create("write", "web", None, "customer_provided", now=NOW)
        _, adm = storage.keys.create("admin", "ops", None, None, now=NOW)
        basic = {"Authorization": "Basic " + base64.b64encode(f"{w.reveal()}:".encode()).decode()}
        admin = {"Authorization": f"Bearer {adm.reveal()}"}
        with TestClient(create_app(storage, ws.settings, FixedClock(NOW)), raise_server_exceptions=True) as client:
            for name, text in SEGMENTS.items():
                r = client.post("/v1/segments", json={"name": name, "definition": text}, headers=admin)
                assert r.status_code == 201, r.text
            r = client.post("/v1/identify", json={"userId": "far", "traits": {"email": "far@example.com"}},
                            headers=basic)
            assert r.status_code == 200, r.text
            storage.log.append([event("far-1", when), event("far-2", when, original_timestamp=when, sent_at=when)])

            r = client.get("/v1/profiles", params={"identifier": "email:far@example.com"}, headers=admin)
            assert r.status_code == 200, r.text
            pid = r.json()["id"]
            for at in ({}, {"at": "2026-01-01T00:00:00Z"}):
                r = client.get(f"/v1/profiles/{pid}", params=at, headers=admin)
                assert r.status_code == 200, r.text
                r = client.get(f"/v1/profiles/{pid}/segments", params=at, headers=admin)
                assert r.status_code == 200, r.text
            names = {m["name"] for m in r.json()["segments"]}
            assert ("bought" in names) is (when is FAR_PAST)  # a future event has not happened yet
            for name in SEGMENTS:
                r = client.get(f"/v1/segments/{name}/count", headers=admin)
                assert r.status_code == 200, (name, r.text)
                r = client.get(f"/v1/segments/{name}/members", headers=admin)
                assert r.status_code == 200, (name, r.text)
            r = client.get(f"/v1/profiles/{pid}/timeline", headers=admin)
            assert r.status_code == 200, r.text

            r = client.post("/v1/privacy/erase", json={"identifier": "email:far@example.com"}, headers=admin)
            assert r.status_code == 200, r.text
            assert r.json()["erased"]
            assert client.get(f"/v1/profiles/{pid}", headers=admin).status_code == 404
            for name in SEGMENTS:
                r = client.get(f"/v1/segments/{name}/count", headers=admin)
                assert r.status_code == 200 and r.json()["count"] == 0, (name, r.text)
    finally:
        storage.close()
