"""A profile read right after its write: a miss folds what is committed (a bounded amount) before answering 404,
so a client that wrote and then reads its profile never sees "not found" because the follower thread had not run
yet."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from takt.api import profiles as profiles_api
from takt.api.app import create_app
from takt.clock import FixedClock
from takt.projections.runner import ProfileRunner
from takt.settings import load
from takt.storage.duckdb import DuckDBStorage

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, dict[str, str]]]:
    # no follower thread: the projection only moves when a request folds it
    monkeypatch.setattr(ProfileRunner, "start", lambda self, *a, **k: None)
    storage = DuckDBStorage(tmp_path / "w.duckdb")
    _, write = storage.keys.create("write", "w", None, "customer_provided", now=NOW)
    _, read = storage.keys.create("read", "r", now=NOW)
    headers = {"write": "Basic " + base64.b64encode(f"{write.reveal()}:".encode()).decode(),
               "read": f"Bearer {read.reveal()}"}
    with TestClient(create_app(storage, load(None, env={}), FixedClock(NOW))) as client:
        yield client, headers
    storage.close()


def _identify(client: TestClient, headers: dict[str, str], user: str) -> None:
    r = client.post("/v1/identify", headers={"Authorization": headers["write"]},
                    json={"userId": user, "traits": {"email": f"{user}@example.com"}})
    assert r.status_code == 200, r.text


def test_a_profile_written_a_moment_ago_is_found_by_identifier_and_by_id(world: tuple[TestClient, dict[str, str]]) -> None:
    client, headers = world
    _identify(client, headers, "bob")
    r = client.get("/v1/profiles", params={"identifier": "email:bob@example.com"},
                   headers={"Authorization": headers["read"]})
    assert r.status_code == 200, r.text
    pid = r.json()["id"]
    assert r.json()["traits"]["email"]["value"] == "bob@example.com"
    _identify(client, headers, "cy")
    found = client.get("/v1/profiles", params={"identifier": "user_id:cy"}, headers={"Authorization": headers["read"]})
    assert found.status_code == 200 and found.json()["id"] != pid
    assert client.get(f"/v1/profiles/{found.json()['id']}", headers={"Authorization": headers["read"]}).status_code == 200


def test_an_unknown_profile_is_still_404_with_the_standard_shape(world: tuple[TestClient, dict[str, str]]) -> None:
    client, headers = world
    _identify(client, headers, "dee")
    r = client.get("/v1/profiles", params={"identifier": "email:nobody@example.com"},
                   headers={"Authorization": headers["read"]})
    assert r.status_code == 404 and r.json()["code"] == "not_found" and r.json()["success"] is False


def test_the_fold_on_a_miss_is_bounded(world: tuple[TestClient, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    client, headers = world
    monkeypatch.setattr(profiles_api, "CATCH_UP_ON_MISS", 1)
    for user in ("e1", "e2", "e3"):
        _identify(client, headers, user)
    runner: ProfileRunner = client.app.state.ctx.extras["profiles"]  # type: ignore[attr-defined]
    before = runner.position
    r = client.get("/v1/profiles", params={"identifier": "user_id:e3"}, headers={"Authorization": headers["read"]})
    # one chunk folded (the limit is checked between chunks), not an unbounded loop
    assert runner.position > before
    assert r.status_code == 200
