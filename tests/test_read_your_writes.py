"""A profile read right after its write, on a server without a follower thread: the request folds what is
committed before answering, so a client that wrote and then reads its profile never sees "not found". (With a
follower, reads wait for the published state instead: tests/test_published_reads.py.)"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from starlette.testclient import TestClient

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
