"""The campaign run API: launch, pause, resume, stop, status (skips by reason code, conversions) and a
person's messages with why each was allowed; POSTing a sent email's one-click URL makes the very next decide
answer not allowed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from takt.api.app import create_app
from takt.api.campaign_runs import ORCHESTRATOR
from takt.campaigns.delivery.base import Deliveries
from takt.campaigns.model import Goal
from takt.campaigns.orchestrator import Orchestrator
from takt.campaigns.unsubscribe_headers import one_click_headers
from takt.clock import FixedClock
from takt.policy.config import PolicySettings
from takt.policy.suppression_store import suppression_key
from takt.settings import load
from takt.storage.duckdb import DuckDBStorage
from tests.campaigns.world import T0, Recorder, campaign, person_events

NOW = T0 + timedelta(days=1)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[dict[str, Any]]:
    storage = DuckDBStorage(tmp_path / "a.duckdb")
    settings = load(None, env={})
    storage.log.append([e for u in ("ann", "bob") for e in person_events(u)])
    _, secret = storage.keys.create("admin", "admin", None, None, now=NOW)
    clock = FixedClock(NOW)
    app = create_app(storage, settings, clock)
    with TestClient(app) as client:
        c = app.state.ctx
        runner = c.extras["profiles"]
        runner.catch_up()
        rec = Recorder("email")
        store = {("spring", 1): replace(campaign("spring"), goal=Goal("Order Completed", timedelta(days=14)))}
        orch = Orchestrator(storage, runner, Deliveries({"email": rec}),
                            PolicySettings.from_settings(settings, suppression_key(storage)),
                            lambda n, v: store.get((n, v)), clock, latest=lambda n: store.get((n, 1)),
                            headers=one_click_headers(storage, settings, "http://testserver"))
        c.extras[ORCHESTRATOR] = orch
        yield {"client": client, "orch": orch, "rec": rec, "admin": {"Authorization": f"Bearer {secret.reveal()}"},
               "runner": runner, "storage": storage, "clock": clock}
        orch.stop()
    storage.close()


def test_launch_status_messages_and_one_click(api: dict[str, Any]) -> None:
    client, admin, orch = api["client"], api["admin"], api["orch"]
    assert client.post("/v1/campaigns/spring/pause", headers=admin).json()["code"] == "campaign_not_launched"
    r = client.post("/v1/campaigns/spring/launch", headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "running"
    assert client.post("/v1/campaigns/spring/launch", headers=admin).status_code == 409
    orch.run_once()
    st = client.get("/v1/campaigns/spring/status", headers=admin).json()
    assert (st["enrolled"], st["sent"], st["skipped"], st["unknown"], st["conversions"]) == (2, 2, {}, 0, 0)
    (ann,) = [m for m in api["rec"].sent if m.contact_point == "ann@example.com"]
    msgs = client.get(f"/v1/profiles/{ann.profile_id}/messages", headers=admin).json()["messages"]
    assert [(m["status"], m["channel"]) for m in msgs] == [("sent", "email")]
    assert msgs[0]["why"] and msgs[0]["why"][0].startswith("allowed")
    audited = client.get("/v1/audit", params={"action": "profile.messages"}, headers=admin).json()
    assert [e["subject"] for e in audited["entries"]] == [ann.profile_id], audited
    # the one-click URL in the headers: POST it, and the very next decide says no
    url = ann.headers["List-Unsubscribe"].strip("<>").replace("http://testserver", "")
    assert client.post(url, content=b"List-Unsubscribe=One-Click",
                       headers={"content-type": "application/x-www-form-urlencoded"}).status_code == 200
    d = client.post("/v1/decide", headers=admin, json={"profile": "user_id:ann", "intent": "marketing",
                                                       "channels": ["email"]}).json()
    assert d["allowed"] is False
    assert client.post("/v1/campaigns/spring/stop", headers=admin).json()["status"] == "stopped"
    assert client.post("/v1/campaigns/spring/resume", headers=admin).status_code == 409
