"""One count of events everywhere (issue 12.11): the demo's printed count is the log's count after the
projections derived their events, and /v1/events/count says the same, with derived events counted as such."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from starlette.testclient import TestClient

from takt.api.app import create_app
from takt.clock import FixedClock
from takt.demo.feed import build_demo
from takt.demo.generator import DemoConfig
from takt.workspace import open_workspace

END = datetime(2026, 11, 24, 12, tzinfo=UTC)


def test_the_demo_count_is_the_api_count_and_derived_events_are_told_apart(tmp_path: Path) -> None:
    result = build_demo(tmp_path / "d", DemoConfig(end=END, customers=20, days=365, seed=9), clock=FixedClock(END),
                        transport="testclient")
    ws = open_workspace(tmp_path / "d")
    with ws.open_storage() as storage:
        app = create_app(storage, ws.settings, FixedClock(END), project=False)
        with TestClient(app) as client:
            body = client.get("/v1/events/count", headers={"Authorization": f"Bearer {result.keys.admin}"}).json()
    assert result.events_in_log == body["count"]
    assert body["derived"] == body["by_kind"]["derived"].get("interest_shifted", 0) > 0
    assert body["sent"] + body["derived"] == body["count"]
    assert result.derived_in_log == body["derived"]
