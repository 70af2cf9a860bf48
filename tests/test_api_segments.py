"""Stored segments over HTTP, on DuckDB and PostgreSQL workspaces: the store's endpoints with their errors;
count, members (paged, CSV, Parquet) and explain agree with live evaluation; memberships in the profile."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pyarrow.parquet as pq
import pytest
from starlette.testclient import TestClient

from takt.api.app import create_app
from takt.clock import FixedClock
from takt.events.model import Event
from takt.projections.tables import live_view
from takt.segments import evaluate, parse
from takt.settings import load
from takt.storage.base import Storage
from tests.test_segment_workspace import NOW, people


class Api:
    def __init__(self, client: TestClient, admin: str, read: str, storage: Storage):
        self.client = client
        self.admin = {"Authorization": f"Bearer {admin}"}
        self.read = {"Authorization": f"Bearer {read}"}
        self.storage = storage

    @property
    def runner(self) -> Any:
        return self.client.app.state.ctx.extras["profiles"]  # type: ignore[attr-defined]

    def create(self, name: str, definition: str) -> Any:
        return self.client.post("/v1/segments", json={"name": name, "definition": definition}, headers=self.admin)

    def live_members(self, definition: str, lookup: dict[str, Any] | None = None) -> list[str]:
        node = parse(definition)
        out = []
        for pid in self.runner.profile_ids():
            view = live_view(self.runner, pid)
            if view is not None and evaluate(node, view, NOW, segments=lookup):
                out.append(pid)
        return sorted(out)


@pytest.fixture
def api(storage: Storage) -> Iterator[Api]:
    storage.log.append(people())
    _, a = storage.keys.create("admin", "ops", now=NOW)
    _, r = storage.keys.create("read", "reader", now=NOW)
    app = create_app(storage, load(None, env={}), FixedClock(NOW))
    with TestClient(app) as client:
        api = Api(client, a.reveal(), r.reveal(), storage)
        api.runner.catch_up()
        yield api


def test_create_read_update_delete_with_clear_errors(api: Api) -> None:
    c = api.client
    r = api.create("de", 'trait.country = "DE"')
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == "de" and body["version"] == 1 and body["json"]["type"] == "compare"
    assert body["created_by"] and body["created_at"] == "2026-11-20T00:00:00Z"
    assert r.headers["location"] == "/v1/segments/de"
    # a typo: 400, positioned, with did-you-mean from the workspace's trait names
    r = api.create("typo", 'trait.contry = "DE"')
    assert r.status_code == 400
    err = r.json()
    assert err["success"] is False and err["code"] == "invalid_segment"
    assert err["errors"][0]["line"] == 1 and err["errors"][0]["column"] == 1
    assert "did you mean 'country'" in err["errors"][0]["hint"]
    # ... unless unknown names are allowed on purpose
    r = c.post("/v1/segments", json={"name": "future", "definition": 'trait.loyalty_tier = "gold"',
                                     "allow_unknown_names": True}, headers=api.admin)
    assert r.status_code == 201, r.text
    r = c.post("/v1/segments", json={"name": "x", "definition": "trait.email exists", "colour": "red"},
               headers=api.admin)
    assert r.status_code == 400 and r.json()["code"] == "unknown_field" and r.json()["errors"][0]["field"] == "colour"
    r = c.post("/v1/segments", json={"name": "bad name", "definition": "trait.email exists"}, headers=api.admin)
    assert r.status_code == 400 and r.json()["code"] == "invalid_segment_name"
    assert api.create("de", "trait.email exists").status_code == 409
    assert c.post("/v1/segments", json={"name": "y", "definition": "trait.email exists"},
                  headers=api.read).status_code == 403
    # by JSON form
    r = c.post("/v1/segments", json={"name": "mail", "json": {"type": "exists", "left": {"type": "trait",
                                                                                           "name": "email"}}},
               headers=api.admin)
    assert r.status_code == 201 and r.json()["definition"] == "trait.email exists"
    assert api.create("de-mail", 'in segment("de") and in segment("mail")').status_code == 201
    listed = c.get("/v1/segments", headers=api.read).json()["segments"]
    assert [s["name"] for s in listed] == ["de", "de-mail", "future", "mail"]
    # update: a new version; a cycle is refused
    r = c.put("/v1/segments/de", json={"definition": 'trait.country in ["DE", "AT"]'}, headers=api.admin)
    assert r.status_code == 200 and r.json()["version"] == 2
    r = c.put("/v1/segments/de", json={"definition": 'in segment("de-mail")'}, headers=api.admin)
    assert r.status_code == 400 and "cycle" in r.json()["message"]
    assert c.put("/v1/segments/nope", json={"definition": "trait.email exists"}, headers=api.admin).status_code == 404
    assert c.put("/v1/segments/de", json={"definition": "trait.email exists"}, headers=api.read).status_code == 403
    versions = c.get("/v1/segments/de/versions", headers=api.read).json()["versions"]
    assert [(v["version"], v["definition"]) for v in versions] == [
        (1, 'trait.country = "DE"'), (2, 'trait.country in ["DE", "AT"]')]
    # delete: refused while referenced, then allowed; the history stays
    r = c.delete("/v1/segments/mail", headers=api.admin)
    assert r.status_code == 409 and r.json()["code"] == "segment_in_use" and "de-mail" in r.json()["message"]
    assert c.delete("/v1/segments/de-mail", headers=api.admin).status_code == 200
    r = c.delete("/v1/segments/mail", headers=api.admin)
    assert r.status_code == 200 and r.json()["deleted"] is True and r.json()["version"] == 2
    assert c.get("/v1/segments/mail", headers=api.read).status_code == 404
    assert [v["deleted"] for v in c.get("/v1/segments/mail/versions", headers=api.read).json()["versions"]] == [
        False, True]
    r = c.get("/v1/segments/dee", headers=api.read)
    assert r.status_code == 404 and "did you mean 'de'" in r.json()["message"]


def test_count_members_and_explain_agree_with_live_evaluation(api: Api) -> None:
    c = api.client
    definitions = {
        "de": 'trait.country = "DE"',
        "buyers": 'count(track "Order Completed" in last 365d) >= 2',
        "de-buyers": 'in segment("de") or in segment("buyers")',
        "krabi": 'count(page where properties.path contains "/krabi" in last 30d) >= 1',
    }
    for name, d in definitions.items():
        assert api.create(name, d).status_code == 201
    at = {"at": NOW.isoformat()}
    lookup = {n: parse(d) for n, d in definitions.items()}
    engine = "postgres" if api.storage.backend == "postgres" else "duckdb"
    for name, d in definitions.items():
        live = api.live_members(d, lookup)
        assert 0 < len(live) < 12, name
        r = c.get(f"/v1/segments/{name}/count", params=at, headers=api.read)
        assert r.status_code == 200, r.text
        assert r.json()["count"] == len(live) and r.json()["engine"] == engine
        r = c.get(f"/v1/segments/{name}/members", params=at, headers=api.read)
        assert r.json()["members"] == live and r.json()["next_after"] is None
    # paging: stable order by profile id
    everyone = api.live_members(definitions["de-buyers"], lookup)
    pages: list[str] = []
    after = None
    while True:
        params = {**at, "limit": "2", **({"after": after} if after else {})}
        page = c.get("/v1/segments/de-buyers/members", params=params, headers=api.read).json()
        pages.extend(page["members"])
        after = page["next_after"]
        if after is None:
            break
        assert page["next"].startswith("/v1/segments/de-buyers/members?after=")
    assert pages == everyone and len(everyone) > 2
    r = c.get("/v1/segments/de-buyers/members", params={**at, "format": "csv"}, headers=api.read)
    assert r.headers["content-type"].startswith("text/csv")
    assert r.text.splitlines() == ["profile_id", *everyone]
    r = c.get("/v1/segments/de-buyers/members", params={**at, "format": "parquet"}, headers=api.read)
    assert pq.read_table(io.BytesIO(r.content)).column("profile_id").to_pylist() == everyone
    assert c.get("/v1/segments/de/members", params={"limit": "0"}, headers=api.read).status_code == 400
    assert c.get("/v1/segments/de/members", params={"format": "xml"}, headers=api.read).status_code == 400
    assert c.get("/v1/segments/de/count", params={"at": "yesterday"}, headers=api.read).status_code == 400
    assert c.get("/v1/segments/nope/count", headers=api.read).status_code == 404
    # time is a parameter: a year later nobody bought in the last 365 days
    later = {"at": (NOW + timedelta(days=400)).isoformat()}
    assert c.get("/v1/segments/buyers/count", params=later, headers=api.read).json()["count"] == 0
    # new events move the count (the tables follow the log)
    before = c.get("/v1/segments/de/count", params=at, headers=api.read).json()["count"]
    api.storage.log.append([Event(kind="identify", message_id="new-de", source="web", user_id="new-de",
                                  traits={"country": "DE"}, timestamp=NOW, received_at=NOW)])
    assert c.get("/v1/segments/de/count", params=at, headers=api.read).json()["count"] == before + 1
    r = c.get("/v1/segments/de-buyers/explain", params=at, headers=api.read)
    body = r.json()
    assert body["explanation"].startswith("people ") and set(body["sql"]) == {"duckdb", "postgres", "spark"}
    assert "profile_traits" in body["sql"]["postgres"] and "JSONB" in body["sql"]["postgres"]
    assert "GET_JSON_OBJECT" in body["sql"]["spark"]


def _membership(n: int, kind: str, pid: str, segment: str, at: datetime) -> Event:
    return Event(kind=kind, message_id=f"seg-{n}", source="takt:segments", timestamp=at, received_at=at,
                 properties={"profile_id": pid, "segment": segment, "version": 1,
                             "at": at.isoformat().replace("+00:00", "Z")})


def test_profile_memberships_and_history(api: Api) -> None:
    c = api.client
    assert api.create("de", 'trait.country = "DE"').status_code == 201
    assert api.create("fr", 'trait.country = "FR"').status_code == 201
    de = api.live_members('trait.country = "DE"')
    fr = api.live_members('trait.country = "FR"')
    pid, other = de[0], fr[0]
    api.storage.log.append([_membership(1, "segment_entered", pid, "de", NOW - timedelta(days=3)),
                            _membership(2, "segment_entered", other, "fr", NOW - timedelta(days=2)),
                            _membership(3, "segment_exited", pid, "de", NOW - timedelta(days=1)),
                            _membership(4, "segment_entered", pid, "de", NOW)])
    r = c.get(f"/v1/profiles/{pid}/segments", params={"at": NOW.isoformat()}, headers=api.read)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["segments"] == [{"name": "de", "version": 1}]
    assert [(h["change"], h["segment"]) for h in body["history"]] == [
        ("entered", "de"), ("exited", "de"), ("entered", "de")]
    assert body["history"][1]["at"] == (NOW - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert c.get("/v1/profiles/p_nobody/segments", headers=api.read).status_code == 404
    assert c.get("/v1/profiles/user_id:nobody/segments", headers=api.read).status_code == 404
    by_identifier = c.get("/v1/profiles/user_id:u0/segments", params={"at": NOW.isoformat()}, headers=api.read)
    assert by_identifier.status_code == 200 and by_identifier.json()["segments"] == [{"name": "de", "version": 1}]
    # the profile JSON lists the segments the profile is in now
    assert c.get(f"/v1/profiles/{pid}", headers=api.read).json()["segments"] == [{"name": "de", "version": 1}]
    assert c.get(f"/v1/profiles/{other}", headers=api.read).json()["segments"] == [{"name": "fr", "version": 1}]
