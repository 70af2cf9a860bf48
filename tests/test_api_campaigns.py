"""Stored campaigns over HTTP: create (JSON or YAML), read a version, update, archive, history; a document
with problems is one 422 listing each at its field, checked against the workspace's names."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from takt.api.app import create_app
from takt.clock import FixedClock
from takt.settings import load
from takt.storage.duckdb import DuckDBStorage
from tests.test_segment_workspace import NOW, people

YAML = """name: ny-city-break
intent: marketing
audience: interest("destination:new-york") > 0
trigger: {on: now}
channels: [email]
message:
  email:
    subject: "New York, {{ traits.firstName }}?"
    text: "Hi {{ traits.firstName }}. {{ unsubscribe_url }}"
    defaults: {traits.firstName: there}
"""


def doc(**more: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"name": "ny-city-break", "intent": "marketing",
                         "audience": 'interest("destination:new-york") > 0', "trigger": {"on": "now"},
                         "channels": ["email"], "message": {"email": {"subject": "New York?", "text": "Hi"}}}
    d.update(more)
    return d


@pytest.fixture
def client(tmp_path: Any) -> Iterator[tuple[TestClient, dict[str, str], dict[str, str]]]:
    storage = DuckDBStorage(tmp_path / "c.duckdb")
    storage.log.append(people())
    _, a = storage.keys.create("admin", "ops", now=NOW)
    _, r = storage.keys.create("read", "reader", now=NOW)
    app = create_app(storage, load(None, env={}), FixedClock(NOW))
    with TestClient(app) as c:
        c.app.state.ctx.extras["profiles"].catch_up()  # type: ignore[attr-defined]
        yield c, {"Authorization": f"Bearer {a.reveal()}"}, {"Authorization": f"Bearer {r.reveal()}"}
    storage.close()


def test_create_read_update_archive(client: Any) -> None:
    c, admin, read = client
    r = c.post("/v1/campaigns", content=YAML, headers={**admin, "Content-Type": "application/yaml"})
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 1 and r.headers["location"] == "/v1/campaigns/ny-city-break"
    assert r.json()["document"]["trigger"] == {"on": "now"}
    assert c.post("/v1/campaigns", json=doc(), headers=admin).status_code == 409
    r = c.put("/v1/campaigns/ny-city-break", json=doc(), headers=admin)
    assert r.status_code == 200 and r.json()["version"] == 2
    assert c.put("/v1/campaigns/ny-city-break", json=doc(), headers=admin).json()["version"] == 2  # unchanged
    assert c.get("/v1/campaigns/ny-city-break", headers=read).json()["version"] == 2
    old = c.get("/v1/campaigns/ny-city-break", params={"version": 1}, headers=read).json()
    assert old["document"]["message"]["email"]["defaults"] == {"traits.firstName": "there"}
    assert [x["name"] for x in c.get("/v1/campaigns", headers=read).json()["campaigns"]] == ["ny-city-break"]
    r = c.delete("/v1/campaigns/ny-city-break", headers=admin)
    assert r.status_code == 200 and r.json()["archived"] is True
    assert c.get("/v1/campaigns/ny-city-break", headers=read).status_code == 404
    assert c.get("/v1/campaigns", headers=read).json()["campaigns"] == []
    versions = c.get("/v1/campaigns/ny-city-break/versions", headers=read).json()["versions"]
    assert [(v["version"], v["archived"]) for v in versions] == [(1, False), (2, False), (3, True)]


def test_problems_are_one_422_with_paths_and_workspace_names(client: Any) -> None:
    c, admin, _ = client
    r = c.post("/v1/campaigns", json=doc(audience='interest("destination:new-yrok") > 0', channels=["emial"],
                                         steps=[{"send": {}}, {"wait": "3 days"}]), headers=admin)
    assert r.status_code == 422
    body = r.json()
    assert body["code"] == "invalid_campaign"
    errs = {e["field"]: e for e in body["errors"]}
    assert "destination:new-york" in errs["audience"]["excerpt"]  # the workspace's interests, with did-you-mean
    assert errs["channels[0]"]["hint"] == "did you mean 'email'?"
    assert "steps[1].wait" in errs
    r = c.post("/v1/campaigns", params={"allow_unknown_names": "true"},
               json=doc(audience='interest("destination:new-yrok") > 0'), headers=admin)
    assert r.status_code == 201
    r = c.post("/v1/campaigns", json=doc(name="other", audience={"segment": "nope"}), headers=admin)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "audience.segment"


def test_update_checks_the_name_and_existence(client: Any) -> None:
    c, admin, _ = client
    assert c.put("/v1/campaigns/missing", json=doc(name="missing"), headers=admin).status_code == 404
    c.post("/v1/campaigns", json=doc(), headers=admin)
    r = c.put("/v1/campaigns/ny-city-break", json=doc(name="renamed"), headers=admin)
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "name"
    no_name = {k: v for k, v in doc(priority=80).items() if k != "name"}
    assert c.put("/v1/campaigns/ny-city-break", json=no_name, headers=admin).json()["version"] == 2
    assert c.get("/v1/campaigns/bad name!", headers=admin).status_code == 400
    assert c.get("/v1/campaigns/ny-city-break", params={"version": "x"}, headers=admin).status_code == 400
    assert c.get("/v1/campaigns/ny-city-break", params={"version": 9}, headers=admin).status_code == 404
    assert c.post("/v1/campaigns", content=b"[1, 2]", headers={**admin, "Content-Type": "application/json"}
                  ).status_code == 422
