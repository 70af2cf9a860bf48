"""GET /v1/analytics/*: the reports over HTTP, the same numbers as the library, parameters checked, small groups
suppressed by the workspace's setting."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from takt.analytics.attribution import attribution
from takt.analytics.config import AnalyticsConfig
from takt.analytics.engine import SessionEngine
from takt.analytics.scope import Scope
from takt.api.app import create_app
from takt.clock import FixedClock
from takt.demo.feed import build_demo
from takt.demo.generator import DemoConfig
from takt.settings import load
from takt.workspace import open_workspace
from tests.analytics.support import same

END = datetime(2026, 11, 24, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, str], Any]]:
    path: Path = tmp_path_factory.mktemp("an") / "d"
    result = build_demo(path, DemoConfig(end=END, customers=60, days=120, seed=3), clock=FixedClock(END),
                        transport="testclient")
    ws = open_workspace(path)
    with ws.open_storage() as storage:
        settings = load(path, env={"TAKT_ANALYTICS__MIN_GROUP_SIZE": "5",
                                   "TAKT_ANALYTICS__SOURCE_SLA_MINUTES": '{"website": 60}'})
        app = create_app(storage, settings, FixedClock(END))
        with TestClient(app) as client:
            headers = {"read": f"Bearer {result.keys.read}", "write": f"Basic {result.keys.write}"}
            yield client, headers, storage


def test_the_reports_over_http(demo: tuple[TestClient, dict[str, str], Any]) -> None:
    client, headers, storage = demo
    params = {"from": "2026-09-01", "to": "2026-11-24T12:00:00Z", "half_life": "3,14"}
    r = client.get("/v1/analytics/attribution", params=params, headers={"Authorization": headers["read"]})
    assert r.status_code == 200, r.text
    body = r.json()
    direct = attribution(SessionEngine(storage), Scope(datetime(2026, 9, 1, tzinfo=UTC), END),
                         AnalyticsConfig(min_group_size=5), half_lives=(3, 14))
    assert body["touchpoints"]
    same(body["touchpoints"], direct["touchpoints"])
    assert body["models"] == ["first_touch", "last_touch", "linear", "time_decay_3d", "time_decay_14d", "markov"]
    assert body["min_group_size"] == 5 and body["position"] > 0
    for kind in ("touchpoints", "paths"):
        r = client.get(f"/v1/analytics/{kind}", params={"definition": 'touchpoint("web").count >= 1',
                                                        "trend": "week"},
                       headers={"Authorization": headers["read"]})
        assert r.status_code == 200, r.text
        assert r.json()["scope"]["segment"] == 'touchpoint("web").count >= 1'
    tp = client.get("/v1/analytics/touchpoints", headers={"Authorization": headers["read"]}).json()
    assert tp["by_touchpoint"] and all(row["people"] >= 5 for row in tp["hour_of_week"])


@pytest.mark.parametrize(("params", "field"), [({"from": "yesterday"}, "from"), ({"trend": "month"}, "trend"),
                                                ({"half_life": "0"}, "half_life"), ({"length": "11"}, "length"),
                                                ({"from": "2026-11-02", "to": "2026-11-01"}, "from"),
                                                ({"colour": "red"}, "colour"),
                                                # found by schemathesis: dates that overflowed into a 500
                                                ({"to": "0001-01-01"}, "to"), ({"from": "0001-01-01T00:00+01:00"}, "from"),
                                                ({"to": "9999-12-31T23:59:59-01:00"}, "to")])
def test_a_bad_parameter_is_a_400_naming_it(demo: tuple[TestClient, dict[str, str], Any], params: dict[str, str],
                                            field: str) -> None:
    client, headers, _ = demo
    r = client.get("/v1/analytics/paths", params=params, headers={"Authorization": headers["read"]})
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["field"] == field


def test_an_unknown_segment_is_a_404(demo: tuple[TestClient, dict[str, str], Any]) -> None:
    client, headers, _ = demo
    r = client.get("/v1/analytics/touchpoints", params={"segment": "nobody"}, headers={"Authorization": headers["read"]})
    assert r.status_code == 404, r.text


def test_periods_without_people_show_nothing(demo: tuple[TestClient, dict[str, str], Any]) -> None:
    client, headers, _ = demo
    old = (END - timedelta(days=3000)).date().isoformat()
    r = client.get("/v1/analytics/attribution", params={"from": old, "to": "2020-01-01"},
                   headers={"Authorization": headers["read"]})
    assert r.status_code == 200 and r.json()["touchpoints"] == [] and r.json()["notes"]


def test_fresh_per_source(demo: tuple[TestClient, dict[str, str], Any]) -> None:
    client, headers, _ = demo
    r = client.get("/v1/analytics/fresh", headers={"Authorization": headers["read"]})
    assert r.status_code == 200, r.text
    by = {row["source"]: row for row in r.json()["sources"]}
    assert by["website"]["sla_minutes"] == 60 and by["website"]["status"] in ("ok", "warning", "breach")
    assert all(row["status"] == "no SLA" for name, row in by.items() if name != "website")
    assert all(row["since_last_seconds"] >= 0 and row["lag_p50_seconds"] is not None for row in by.values())
    assert client.get("/v1/analytics/fresh", params={"x": "1"},
                      headers={"Authorization": headers["read"]}).status_code == 400
