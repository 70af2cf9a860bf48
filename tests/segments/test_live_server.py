"""Live membership wired into the server and the worker: a stored segment gets segment_entered events for
events ingested over HTTP; the profile JSON has the computed traits; `takt worker --once` announces members."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner
from starlette.testclient import TestClient

from takt.api.app import create_app
from takt.cli.main import main
from takt.clock import FixedClock
from takt.events.model import Event
from takt.segments.live import SEGMENT_ENTERED
from takt.segments.store import segment_store
from takt.settings import load
from takt.storage.duckdb import DuckDBStorage

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def entered(storage: DuckDBStorage) -> list[Event]:
    return [s.event for s in storage.log.iter() if s.event.kind == SEGMENT_ENTERED]


def test_server_announces_members_and_shows_computed_traits(tmp_path: Path) -> None:
    clock = FixedClock(NOW)
    storage = DuckDBStorage(tmp_path / "t.duckdb")
    _, write = storage.keys.create("write", "web", None, "customer_provided", now=NOW)
    _, read = storage.keys.create("read", "reader", None, None, now=NOW)
    segment_store(storage).create("buyers", text='count(track "Order Completed" in last 30d) >= 1', now=NOW)
    settings = load(None, env={"TAKT_SEGMENTS__COMPUTED_TRAITS":
                               '{"lifetime_value": "sum(track \\"Order Completed\\".revenue)"}'})
    auth = {"Authorization": "Basic " + base64.b64encode(f"{write.reveal()}:".encode()).decode()}
    try:
        with TestClient(create_app(storage, settings, clock)) as client:
            for i, revenue in enumerate((20, 22.5)):
                r = client.post("/v1/track", headers=auth, json={
                    "userId": "u1", "event": "Order Completed", "messageId": f"o{i}",
                    "timestamp": (NOW - timedelta(days=1)).isoformat(), "properties": {"revenue": revenue}})
                assert r.status_code == 200
            deadline = time.monotonic() + 60
            while not entered(storage) and time.monotonic() < deadline:
                time.sleep(0.05)
            (ev,) = entered(storage)
            assert ev.properties["segment"] == "buyers" and ev.properties["version"] == 1
            pid = ev.properties["profile_id"]
            # the second order may still be on its way into the projection: wait until the profile has both
            while True:
                r = client.get(f"/v1/profiles/{pid}", headers={"Authorization": f"Bearer {read.reveal()}"})
                assert r.status_code == 200, r.text
                if r.json()["stats"]["events"] >= 2 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert r.json()["computed"] == {"lifetime_value": 42.5}
    finally:
        storage.close()


def test_worker_announces_members(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    assert CliRunner().invoke(main, ["init", str(ws)]).exit_code == 0
    storage = DuckDBStorage(ws / "takt.duckdb")
    now = datetime.now(UTC)
    storage.log.append([Event(kind="identify", message_id="i1", source="web", timestamp=now, received_at=now,
                              user_id="w1", traits={"country": "DE"})])
    segment_store(storage).create("germans", text='trait.country = "DE"', now=now)
    storage.close()
    r = CliRunner().invoke(main, ["worker", "-w", str(ws), "--once"])
    assert r.exit_code == 0, r.output
    storage = DuckDBStorage(ws / "takt.duckdb")
    try:
        (ev,) = entered(storage)
        assert ev.properties["segment"] == "germans"
        assert storage.snapshots.load("segments.live") is not None
    finally:
        storage.close()
