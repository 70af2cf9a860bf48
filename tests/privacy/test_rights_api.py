"""Export, erasure and the audit log over HTTP."""

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
from takt.policy.suppression_store import check
from takt.settings import load
from takt.storage.base import Storage
from takt.storage.duckdb import DuckDBStorage

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
EMAIL = "ann.rights@example.com"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, Storage, dict[str, str], dict[str, str]]]:
    storage = DuckDBStorage(tmp_path / "t.duckdb")
    keys: dict[str, str] = {}
    ids: dict[str, str] = {}
    for kind, prov in (("write", "customer_provided"), ("read", None), ("admin", None)):
        key, secret = storage.keys.create(kind, kind, None, prov, now=NOW)
        keys[kind], ids[kind] = secret.reveal(), key.id
    app = create_app(storage, load(None, env={}), FixedClock(NOW))
    with TestClient(app) as client:
        basic = {"Authorization": "Basic " + base64.b64encode(f"{keys['write']}:".encode()).decode()}
        for body in ({"type": "identify", "userId": "ann", "traits": {"email": EMAIL, "name": "Ann Rights"}},
                     {"type": "track", "userId": "ann", "event": "Order Completed", "properties": {"total": 12}},
                     {"type": "identify", "userId": "bob", "traits": {"email": "bob@example.com"}}):
            assert client.post("/v1/batch", json={"batch": [body]}, headers=basic).status_code == 200
        client.app.state.ctx.extras["profiles"].catch_up()  # type: ignore[attr-defined]
        client.app.state.ctx.extras["profiles"].save()  # type: ignore[attr-defined]  # rows (and their keys) stored
        yield client, storage, keys, ids
    storage.close()


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _audit(client: TestClient, keys: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    r = client.get("/v1/audit", params=params, headers=_bearer(keys["admin"]))
    assert r.status_code == 200, r.text
    return r.json()["entries"]  # type: ignore[no-any-return]


def test_export_holds_profile_and_events_and_is_audited(api: Any) -> None:
    client, _, keys, ids = api
    r = client.post("/v1/privacy/export", json={"identifier": f"email:{EMAIL}"}, headers=_bearer(keys["admin"]))
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["profile"]["id"] == doc["profile_id"]
    assert EMAIL in r.text and "Ann Rights" in r.text
    assert [e["type"] for e in doc["events"]] == ["identify", "track"]
    assert doc["consent"] == [] and doc["messages"] == []
    again = client.post("/v1/privacy/export", json={"identifier": f"email:{EMAIL}"}, headers=_bearer(keys["admin"]))
    assert again.json()["events"] == doc["events"]  # idempotent
    entries = _audit(client, keys, action="privacy.export")
    assert [(e["key_id"], e["subject"], e["outcome"]) for e in entries] == [(ids["admin"], doc["profile_id"], "ok")] * 2


def test_profile_reads_are_audited_with_the_reading_key(api: Any) -> None:
    client, _, keys, ids = api
    pid = client.get("/v1/profiles", params={"identifier": "user_id:ann"}, headers=_bearer(keys["read"])).json()["id"]
    client.get(f"/v1/profiles/{pid}", headers=_bearer(keys["read"]))
    client.get(f"/v1/profiles/{pid}/timeline", headers=_bearer(keys["admin"]))
    client.get(f"/v1/profiles/{pid}/consent", headers=_bearer(keys["read"]))
    got = [(e["action"], e["key_id"], e["subject"]) for e in _audit(client, keys)]
    assert got == [("consent.read", ids["read"], pid), ("profile.timeline", ids["admin"], pid),
                   ("profile.read", ids["read"], pid), ("profile.lookup", ids["read"], pid)]
    # paging: newest first, `before` continues
    first = _audit(client, keys, limit=2)
    rest = _audit(client, keys, limit=2, before=first[-1]["id"])
    assert [e["action"] for e in first + rest] == [g[0] for g in got]
    assert EMAIL not in str(_audit(client, keys))  # the audit log names profiles, never identifiers


def test_erase_removes_the_person_keeps_others_and_suppresses_the_address(api: Any) -> None:
    client, storage, keys, ids = api
    admin = _bearer(keys["admin"])
    pid = client.get("/v1/profiles", params={"identifier": "user_id:ann"}, headers=admin).json()["id"]
    r = client.post("/v1/privacy/erase", json={"identifier": f"email:{EMAIL}"}, headers=admin)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["erased"] is True and body["profile_id"] == pid
    assert body["events"] == 2 and body["keys"] == 2 and body["suppressed"] == 1
    assert client.get("/v1/profiles", params={"identifier": f"email:{EMAIL}"}, headers=admin).status_code == 404
    assert client.get("/v1/profiles", params={"identifier": "user_id:ann"}, headers=admin).status_code == 404
    assert client.post("/v1/privacy/export", json={"identifier": "user_id:ann"}, headers=admin).status_code == 404
    assert client.get("/v1/profiles", params={"identifier": "user_id:bob"}, headers=admin).status_code == 200
    assert check(storage, "email", EMAIL)  # the keyed hash stays on the suppression list
    for se in storage.log.read():
        assert EMAIL not in str(se.event) and "Ann Rights" not in str(se.event)
    # idempotent
    again = client.post("/v1/privacy/erase", json={"identifier": f"email:{EMAIL}"}, headers=admin).json()
    assert again["erased"] is False and again["events"] == 0
    outcomes = [(e["key_id"], e["outcome"]) for e in _audit(client, keys, action="privacy.erase")]
    assert outcomes == [(ids["admin"], "not_found"), (ids["admin"], "requested"), (ids["admin"], "erased"),
                        (ids["admin"], "requested")]


@pytest.mark.parametrize("body,code", [({"identifier": "user_id:ann", "extra": 1}, "unknown_field"),
                                       ({}, "invalid_request"), ({"identifier": ""}, "invalid_request"),
                                       ({"identifier": 5}, "invalid_request")])
def test_bad_bodies_are_refused_and_nothing_is_erased(api: Any, body: dict[str, Any], code: str) -> None:
    client, storage, keys, _ = api
    n = storage.log.count()
    r = client.post("/v1/privacy/erase", json=body, headers=_bearer(keys["admin"]))
    assert r.status_code == 400 and r.json()["code"] == code
    assert client.get("/v1/profiles", params={"identifier": "user_id:ann"},
                      headers=_bearer(keys["admin"])).status_code == 200
    assert storage.log.count() == n


def test_erase_also_tombstones_derived_events_and_the_unmerge_requests_about_the_person(api: Any) -> None:
    client, storage, keys, _ = api
    admin = _bearer(keys["admin"])
    basic = {"Authorization": "Basic " + base64.b64encode(f"{keys['write']}:".encode()).decode()}
    batch = [{"type": "track", "userId": "ann", "event": "Product Viewed", "messageId": f"pv-{i}",
              "properties": {"category": "tents" if i < 3 else "kayaks"}} for i in range(8)]
    assert client.post("/v1/batch", json={"batch": batch}, headers=basic).status_code == 200
    runner = client.app.state.ctx.extras["profiles"]
    runner.catch_up()
    pid = client.get("/v1/profiles", params={"identifier": "user_id:ann"}, headers=admin).json()["id"]
    # an admin's unmerge request names the person's email: sealed under that identifier
    from takt.identity.kinds import unmerge_event

    storage.log.append([unmerge_event(at=NOW, config=runner.config.identity, identifier=f"email:{EMAIL}")])
    runner.catch_up()
    kinds = {se.event.kind for se in storage.log.read()}
    assert "interest_shifted" in kinds  # the test has derived events to erase
    mentions = [se for se in storage.log.read() if pid in str(se.event) or EMAIL in str(se.event)]
    assert any(se.event.kind == "interest_shifted" for se in mentions)
    assert any(se.event.kind == "identity.unmerge" for se in mentions)

    r = client.post("/v1/privacy/erase", json={"identifier": "user_id:ann"}, headers=admin)
    assert r.status_code == 200 and r.json()["erased"], r.text
    for se in storage.log.read():
        assert pid not in str(se.event), se.event
    # the unmerge split the email off the person, so it was not theirs any more; erasing it (it holds no events
    # of a profile) still destroys the key its request was sealed under
    r = client.post("/v1/privacy/erase", json={"identifier": f"email:{EMAIL}"}, headers=admin)
    assert r.status_code == 200 and r.json()["erased"] and r.json()["keys"] == 1, r.text
    for se in storage.log.read():
        assert EMAIL not in str(se.event), se.event
