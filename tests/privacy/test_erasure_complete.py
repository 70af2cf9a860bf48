"""Erasure by identifier is complete (issue 13): erasing ``email:x`` erases every profile and every event that
carries that identifier, also the ones identity keeps apart (a CRM row under another id whose merge a unique-id
guard refused, a public client's claim of the address) and what was derived from them (segment memberships,
model scores, CLV rows, contactability), on a served workspace through the HTTP erase.

The scenario of the issue: a person imported from the CRM (``crm_id`` A, email x) and the same email sent over
HTTP under another user id whose CRM id differs (so the guard keeps the two apart); after the erase answered
200, the email still found a profile and the event export still held it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from starlette.testclient import TestClient

from takt.api.app import create_app
from takt.clock import FixedClock
from takt.models.registry import Registry as ModelRegistry
from takt.policy.segment_functions import table_of
from takt.segments.live import attached
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


def _canary_bytes(c: dict[str, str], blob: bytes) -> list[str]:
    return [k for k, v in c.items() if v.encode() in blob or v.lower().encode() in blob]


def _all_events(client: TestClient, bearer: dict[str, str]) -> bytes:
    """The whole log as the event export API gives it."""
    out, after = [], 0
    while True:
        r = client.get("/v1/events", params={"after": after, "limit": 1000}, headers=bearer)
        assert r.status_code == 200, r.text
        body = r.json()
        if not body["events"]:
            return b"".join(out)
        out.append(r.content)
        after = body["next_after"]


def test_erasing_an_email_erases_every_profile_and_event_carrying_it(storage: Storage, tmp_path: Path) -> None:
    c = canaries()
    keys = prepare(storage, tmp_path, c)
    bearer = keys.admin
    app = create_app(storage, load(None, env={}), FixedClock(NOW))
    with TestClient(app) as client:
        # the person logs in (user id U1, the CRM's email: one person with the CRM row); the same email under a
        # second user id U2 is kept apart by the user_id guard (a conflict), and holds the email all the same;
        # a visitor's claim of the address (a public key: links nobody, but the profile holds it)
        ids = send(client, keys, c, [
            {"type": "identify", "userId": c["user"], "traits": {"email": c["email"]}},
            {"type": "identify", "userId": c["user"] + "-2", "traits": {"email": c["email"], "name": c["name"],
                                                                         "phone": c["phone"]}},
            {"type": "track", "userId": c["user"] + "-2", "event": "Order Completed",
             "properties": {"revenue": 42, "billing_email": c["email"]}},
            {"type": "identify", "userId": "other-person", "traits": {"email": "other@example.com"}},
        ])
        runner = client.app.state.ctx.extras["profiles"]  # type: ignore[attr-defined]
        crm = client.get("/v1/profiles", params={"identifier": f"crm_id:crm-{c['user']}"}, headers=bearer)
        web = client.get("/v1/profiles", params={"identifier": f"user_id:{c['user']}-2"}, headers=bearer)
        other = client.get("/v1/profiles", params={"identifier": "user_id:other-person"}, headers=bearer)
        assert all(r.status_code == 200 for r in (crm, web, other)), (crm.text, web.text, other.text)
        assert web.json()["conflicts"] and f"user_id:{c['user']}" in crm.json()["identifiers"]
        other_id = other.json()["id"]

        # derived rows of all of them: a stored segment's live membership, model scores, CLV, contactability
        r = client.post("/v1/segments", json={"name": "mail", "definition": "trait.email exists"}, headers=bearer)
        assert r.status_code == 201, r.text
        everyone = sorted(ids | {other_id})
        ModelRegistry(storage).write_scores("churn", 1, everyone, np.full(len(everyone), 0.5), NOW)
        table_of(storage).replace([(pid, "email", "service") for pid in everyone])
        _save_clv(storage, everyone)
        live = attached(storage)
        assert live is not None
        _until(lambda: ids <= live.members("mail"), runner)
        assert _canary_bytes(c, _all_events(client, bearer))  # the export holds them before

        r = client.post("/v1/privacy/erase", json={"identifier": f"email:{c['email']}"}, headers=bearer)
        assert r.status_code == 200 and r.json()["erased"], r.text

        r = client.get("/v1/profiles", params={"identifier": f"email:{c['email']}"}, headers=bearer)
        assert r.status_code == 404, r.text
        for ident in (f"crm_id:crm-{c['user']}", f"user_id:{c['user']}", f"user_id:{c['user']}-2",
                      "anonymous_id:anon-claim"):
            r = client.get("/v1/profiles", params={"identifier": ident}, headers=bearer)
            assert r.status_code == 404, (ident, r.text)
        found = client.get("/v1/profiles/search", params={"q": c["email"]}, headers=bearer)
        assert found.status_code == 200 and found.json()["profiles"] == [], found.text
        export = _all_events(client, bearer)
        assert _canary_bytes(c, export) == [], "no byte of the canary in the event export"
        assert b"other@example.com" in export  # the others are untouched
        assert client.get("/v1/profiles", params={"identifier": "user_id:other-person"},
                          headers=bearer).status_code == 200

        _until(lambda: other_id in live.members("mail"), runner)
        assert not (ids & live.members("mail")), "segment memberships of every erased profile are gone"
        reg = ModelRegistry(storage)
        assert all(reg.scores_of(pid) == [] for pid in ids) and reg.scores_of(other_id)
        assert not {p for p, _, _ in table_of(storage).rows()} & ids
        assert _clv_ids(storage) == {other_id}
    events = [orjson.loads(line) for line in export.splitlines() if line.strip()]
    assert events  # the export was read


def _until(done: Any, runner: Any, seconds: float = 10.0) -> None:
    """Let the live projection catch up and tick (its segment refresh runs at most once a second)."""
    deadline = time.monotonic() + seconds
    while True:
        runner.catch_up()
        runner.tick()
        if done() or time.monotonic() > deadline:
            assert done()
            return
        time.sleep(0.2)


def _save_clv(storage: Storage, pids: list[str]) -> None:
    import pandas as pd

    from takt.models.clv import store

    class Fit:
        customers = pd.DataFrame({"customer_id": pids, **{col: [1.0] * len(pids) for col in store.SCORE_COLUMNS}})

        def to_json(self) -> dict[str, Any]:
            return {"model": "test"}

    store.save_fit(storage, Fit(), NOW)  # type: ignore[arg-type]


def _clv_ids(storage: Storage) -> set[str]:
    from takt.models.clv.store import SCORES
    from takt.models.offers._db import Sql

    return {str(r[0]) for r in Sql(storage).query(f"SELECT profile_id FROM {SCORES}")}
