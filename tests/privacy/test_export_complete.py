"""Access by identifier is complete (issue 13, the counterpart of erasure): exporting ``email:x`` gives every
profile and every event that carries that identifier — also the profiles identity keeps apart (a second user id
whose merge the unique-id guard refused, a CRM row, a public client's claim) — as erasure erases them all. Before,
the export held only the identifier's own profile, so a person asking what takt holds about them saw less than
an erasure would remove."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from takt.api.app import create_app
from takt.clock import FixedClock
from takt.settings import load
from takt.storage.base import Storage
from tests.conftest import open_backend
from tests.privacy.scenario import NOW, prepare, send
from tests.test_erasure_canary import canaries


@pytest.fixture(params=["duckdb", "postgres"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    s = open_backend(request.param, tmp_path, request)
    try:
        yield s
    finally:
        s.close()


def test_exporting_an_email_gives_every_profile_and_event_carrying_it(storage: Storage, tmp_path: Path) -> None:
    c = canaries()
    keys = prepare(storage, tmp_path, c)
    app = create_app(storage, load(None, env={}), FixedClock(NOW))
    with TestClient(app) as client:
        ids = send(client, keys, c, [
            {"type": "identify", "userId": c["user"], "traits": {"email": c["email"]}},
            {"type": "identify", "userId": c["user"] + "-2", "traits": {"email": c["email"], "name": c["name"]}},
            {"type": "track", "userId": c["user"] + "-2", "event": "Order Completed", "properties": {"revenue": 42}},
            {"type": "identify", "userId": "other-person", "traits": {"email": "other@example.com"}},
            {"type": "track", "userId": "other-person", "event": "Order Completed", "properties": {"revenue": 7}},
        ])
        bearer = keys.admin
        r = client.post("/v1/privacy/export", json={"identifier": f"email:{c['email']}"}, headers=bearer)
        assert r.status_code == 200, r.text
        doc = r.json()
        assert {p["id"] for p in doc["profiles"]} == ids, "every profile carrying the email is exported"
        assert doc["profile_id"] in ids and doc["profile"]["id"] == doc["profile_id"]
        types = [(e["type"], e.get("userId"), e.get("anonymousId")) for e in doc["events"]]
        assert ("track", c["user"] + "-2", None) in types, "the order of the profile kept apart is exported"
        assert ("identify", None, "anon-claim") in types, "the public client's claim of the email is exported"
        assert all(e.get("userId") != "other-person" for e in doc["events"]), "nobody else's events"
        positions = [e["position"] for e in doc["events"]]
        assert positions == sorted(set(positions)), "each event once, in log order"
        assert c["email"] in r.text and "other@example.com" not in r.text

        audit = client.get("/v1/audit", headers=bearer)
        assert audit.status_code == 200, audit.text
        exported = {e["subject"] for e in audit.json()["entries"] if e["action"] == "privacy.export"}
        assert ids <= exported, "the audit log names every exported profile"
