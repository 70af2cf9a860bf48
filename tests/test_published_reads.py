"""Reads from the published state (issue 13 item 4): with the projector following the log, decide, profile reads,
consent and next-best-offer never fold on the request's thread; a client reads its own writes (the request waits
for the projection to publish them); a projection that does not get there in time is a 503 naming it, and the
write stays stored."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from takt.api.app import create_app
from takt.clock import FixedClock
from takt.projections import published
from takt.projections.runner import ProfileRunner
from takt.settings import load
from takt.storage.duckdb import DuckDBStorage

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.fixture
def folds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the threads that fold (call ``ProfileRunner.catch_up``)."""
    seen: list[str] = []
    original = ProfileRunner.catch_up

    def catch_up(self: ProfileRunner, *a: Any, **k: Any) -> int:
        seen.append(threading.current_thread().name)
        return original(self, *a, **k)

    monkeypatch.setattr(ProfileRunner, "catch_up", catch_up)
    return seen


@pytest.fixture
def world(tmp_path: Path, folds: list[str]) -> Iterator[tuple[TestClient, dict[str, str]]]:
    storage = DuckDBStorage(tmp_path / "w.duckdb")
    _, write = storage.keys.create("write", "w", None, "customer_provided", trust="server", now=NOW)
    _, read = storage.keys.create("read", "r", now=NOW)
    _, admin = storage.keys.create("admin", "a", now=NOW)
    headers = {"write": "Basic " + base64.b64encode(f"{write.reveal()}:".encode()).decode(),
               "read": f"Bearer {read.reveal()}", "admin": f"Bearer {admin.reveal()}"}
    with TestClient(create_app(storage, load(None, env={}), FixedClock(NOW))) as client:
        yield client, headers
    storage.close()


def _post(client: TestClient, path: str, auth: str, body: dict[str, Any], expect: int = 200) -> dict[str, Any]:
    r = client.post(path, headers={"Authorization": auth}, json=body)
    assert r.status_code == expect, r.text
    return r.json()  # type: ignore[no-any-return]


def test_reads_see_their_writes_and_never_fold_on_the_request_thread(
        world: tuple[TestClient, dict[str, str]], folds: list[str]) -> None:
    client, h = world
    for i in range(5):
        user = f"u{i}"
        _post(client, "/v1/identify", h["write"], {"userId": user, "traits": {"email": f"{user}@example.com"}})
        # acknowledged, then read at once: the profile and its new address are there
        r = client.get("/v1/profiles", params={"identifier": f"user_id:{user}"}, headers={"Authorization": h["read"]})
        assert r.status_code == 200, r.text
        assert r.json()["traits"]["email"]["value"] == f"{user}@example.com"
        _post(client, "/v1/consent", h["admin"], {"profile": f"user_id:{user}", "purpose": "marketing",
                                                  "channel": "email", "status": "granted",
                                                  "evidence": {"method": "double_opt_in"}})
        d = _post(client, "/v1/decide", h["read"], {"profile": f"email:{user}@example.com", "intent": "marketing",
                                                    "channels": ["email"]})
        assert d["allowed"] is True and d["contact_point"] == f"{user}@example.com", d
        # a withdrawal through the customer's own session: the very next decision honours it
        _post(client, "/v1/track", h["write"], {"userId": user, "event": "Consent Updated",
                                                "properties": {"purpose": "marketing", "channel": "email",
                                                               "status": "withdrawn"}})
        d = _post(client, "/v1/decide", h["read"], {"profile": f"user_id:{user}", "intent": "marketing",
                                                    "channels": ["email"]})
        assert d["allowed"] is False and "withdrawn" in {r["code"] for r in d["reasons"]}, d
        nbo = _post(client, "/v1/next-best-offer", h["read"], {"profile": f"user_id:{user}", "placement": "home"})
        assert nbo["profile_id"] == d["profile_id"]
    assert folds and set(folds) == {"takt-projector"}, set(folds)


def test_a_projection_that_does_not_reach_a_write_in_time_is_a_503(
        world: tuple[TestClient, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    client, h = world
    _post(client, "/v1/identify", h["write"], {"userId": "ann", "traits": {"email": "ann@example.com"}})
    assert client.get("/v1/profiles", params={"identifier": "user_id:ann"},
                      headers={"Authorization": h["read"]}).status_code == 200
    runner: ProfileRunner = client.app.state.ctx.extras["profiles"]  # type: ignore[attr-defined]
    monkeypatch.setattr(published, "DEFAULT_WAIT_S", 0.3)
    monkeypatch.setattr(runner, "catch_up", lambda *a, **k: 0)  # the projector is stuck: nothing is published
    r = client.post("/v1/consent", headers={"Authorization": h["admin"]}, json={
        "profile": "user_id:ann", "purpose": "marketing", "channel": "email", "status": "withdrawn"})
    assert r.status_code == 503 and r.json()["code"] == "projection_behind", r.text
    assert "retry" in r.json()["message"]
    monkeypatch.undo()
    runner.notify()
    # the write was stored: once the projection moves on, the withdrawal is there
    d = _post(client, "/v1/decide", h["read"], {"profile": "user_id:ann", "intent": "marketing",
                                                "channels": ["email"]})
    assert d["allowed"] is False and "withdrawn" in {r["code"] for r in d["reasons"]}, d
