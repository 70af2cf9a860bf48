"""Every segment query has a budget, on DuckDB and PostgreSQL: a heavy definition is stopped by the timeout
and by the memory limit with a 422 naming the limit (never a 500) while ingestion goes on; a client that
disconnects cancels its query in the engine; too many queries at once get 429 with Retry-After naming the
limit; explain shows an estimated cost.

The heavy definitions use a test-only function whose SQL is real engine work (a cross join of two number
series, a large DISTINCT, a large sort): the engines' own timeout, interrupt and memory paths stop them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlglot
from sqlglot import exp
from starlette.testclient import TestClient

from takt.api.app import create_app
from takt.clock import FixedClock
from takt.segments import FUNCTIONS, FunctionSpec, parse
from takt.segments.cost import estimate
from takt.settings import load
from takt.storage.base import Storage
from tests.test_cli_segments import run, ws  # noqa: F401 - the CLI workspace fixture, on both backends
from tests.test_segment_workspace import NOW, people

# a query that runs for hours: 10^10 pairs, a filter no statistics can prove empty
SLOW = {"duckdb": "(SELECT count(*) FROM range(100000) AS a(i), range(100000) AS b(j) WHERE hash(i + j) = 0)",
        "postgres": "(SELECT count(*) FROM generate_series(1, 100000) AS a(i), generate_series(1, 100000) AS b(j) "
                    "WHERE (i * 7 + j) % 1000003 = -1)"}
# queries whose intermediates grow large: a hash table (DuckDB), a sort that spills (PostgreSQL)
BIG = {"duckdb": "(SELECT count(*) FROM (SELECT DISTINCT hash(i) FROM range(300000000) AS r(i)))",
       "postgres": "(SELECT count(*) FROM (SELECT i FROM generate_series(1, 3000000) AS g(i) "
                   "ORDER BY md5(i::text)) AS s)"}


def _spec(name: str, sql: dict[str, str]) -> FunctionSpec:
    return FunctionSpec(name=name, params=(), returns="number", explain=lambda args: f"the {name} test value",
                        compile=lambda args, ctx: sqlglot.parse_one(sql[ctx.dialect], read=ctx.dialect),
                        evaluate=lambda args, view, now: 0)


@pytest.fixture(autouse=True)
def heavy_functions() -> Iterator[None]:
    specs = [_spec("test_slow", SLOW), _spec("test_big", BIG)]
    for s in specs:
        FUNCTIONS.register(s)
    yield
    for s in specs:
        FUNCTIONS._specs.pop(s.name, None)


class Api:
    def __init__(self, storage: Storage, **settings: Any):
        env = {"TAKT_SEGMENTS__" + k.upper(): str(v) for k, v in settings.items()}
        storage.log.append(people())
        _, admin = storage.keys.create("admin", "ops", now=NOW)
        _, other = storage.keys.create("read", "other", now=NOW)
        _, write = storage.keys.create("write", "web", None, "observed", now=NOW)
        self.admin = {"Authorization": f"Bearer {admin.reveal()}"}
        self.other = {"Authorization": f"Bearer {other.reveal()}"}
        self.write_key = write.reveal()
        self.storage = storage
        self.app = create_app(storage, load(None, env=env), FixedClock(NOW))

    def create(self, client: TestClient, name: str, definition: str) -> None:
        r = client.post("/v1/segments", json={"name": name, "definition": definition}, headers=self.admin)
        assert r.status_code == 201, r.text

    def ingest(self, client: TestClient, n: int) -> Any:
        import base64

        auth = {"Authorization": "Basic " + base64.b64encode(f"{self.write_key}:".encode()).decode()}
        return client.post("/v1/batch", headers=auth, json={"batch": [
            {"type": "track", "userId": f"u{i}", "event": "Ping", "messageId": f"ping-{n}-{i}"} for i in range(5)]})


def test_a_heavy_count_is_stopped_by_the_timeout_with_422_and_ingestion_goes_on(storage: Storage) -> None:
    api = Api(storage, query_timeout_seconds=1)
    with TestClient(api.app) as client:
        api.create(client, "heavy", "test_slow() >= 0")
        api.create(client, "light", 'trait.country = "DE"')
        result: dict[str, Any] = {}

        def count() -> None:
            result["r"] = client.get("/v1/segments/heavy/count", headers=api.admin)

        t = threading.Thread(target=count)
        t.start()
        # meanwhile, collection is acknowledged (durable) as usual
        while t.is_alive() and "r" not in result:
            assert api.ingest(client, len(result)).status_code == 200
            time.sleep(0.05)
            result.setdefault("ingested", 0)
            result["ingested"] += 1
        t.join()
        r = result["r"]
        assert r.status_code == 422, r.text
        body = r.json()
        assert body["code"] == "query_timeout" and "segments.query_timeout_seconds" in body["message"]
        assert body["errors"][0]["field"] == "segments.query_timeout_seconds"
        assert result["ingested"] >= 1
        # members and explain are budgeted the same way; a light count still answers
        r = client.get("/v1/segments/heavy/members", headers=api.admin)
        assert r.status_code == 422 and r.json()["code"] == "query_timeout"
        r = client.get("/v1/segments/light/count", headers=api.admin)
        assert r.status_code == 200 and r.json()["count"] >= 1


def test_a_heavy_count_is_stopped_by_the_memory_limit_with_422(storage: Storage) -> None:
    api = Api(storage, query_timeout_seconds=120, query_memory_share=0.002, query_work_mem="64KB",
              query_spill_limit="64KB")
    with TestClient(api.app) as client:
        api.create(client, "big", "test_big() >= 0")
        r = client.get("/v1/segments/big/count", headers=api.admin)
        assert r.status_code == 422, r.text
        body = r.json()
        assert body["code"] == "query_memory"
        setting = {"duckdb": "segments.query_memory_share", "postgres": "segments.query_spill_limit"}[storage.backend]
        assert setting in body["message"] and body["errors"][0]["field"] == setting
        assert client.get("/health").status_code == 200


async def _count_then_disconnect(app: Any, headers: dict[str, str], after: float) -> tuple[list[Any], float]:
    import anyio

    sent: list[Any] = []
    gone_at: float | None = None

    async def receive() -> dict[str, Any]:  # as a server's: the request, then the disconnect once it happened
        nonlocal gone_at
        if gone_at is None:
            gone_at = time.monotonic() + after
            return {"type": "http.request", "body": b"", "more_body": False}
        if time.monotonic() < gone_at:
            await anyio.sleep(gone_at - time.monotonic())
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": "/v1/segments/heavy/count", "raw_path": b"/v1/segments/heavy/count", "query_string": b"",
             "root_path": "", "server": ("testserver", 80), "client": ("testclient", 50000), "app": app,
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    start = time.monotonic()
    await app(scope, receive, send)
    return sent, time.monotonic() - start


def _running_in_postgres(storage: Storage) -> list[str]:
    with storage._pool.connection() as con:  # type: ignore[attr-defined]
        rows = con.execute("SELECT query FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s "
                           "AND pid <> pg_backend_pid()", ["%generate_series(1, 100000)%"]).fetchall()
    return [str(r[0]) for r in rows]


def test_a_client_that_disconnects_cancels_its_query(storage: Storage) -> None:
    api = Api(storage, query_timeout_seconds=600)
    with TestClient(api.app) as client:
        api.create(client, "heavy", "test_slow() >= 0")
        assert client.portal is not None
        sent, elapsed = client.portal.call(_count_then_disconnect, api.app, api.admin, 1.0)
        # the handler returned long before the budget: the query was stopped in the engine, not abandoned
        assert elapsed < 60
        start = next(m for m in sent if m["type"] == "http.response.start")
        assert start["status"] == 499
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        assert b"query_cancelled" in body
        if storage.backend == "postgres":
            assert _running_in_postgres(storage) == []
        # the slot was given back
        assert client.app.state.ctx.extras["query_slots"].running == {}  # type: ignore[attr-defined]


def test_too_many_queries_get_429_naming_the_limit(storage: Storage) -> None:
    api = Api(storage, query_timeout_seconds=5, query_concurrency_per_key=1, query_concurrency=1)
    with TestClient(api.app) as client:
        api.create(client, "heavy", "test_slow() >= 0")
        api.create(client, "light", 'trait.country = "DE"')
        result: dict[str, Any] = {}
        t = threading.Thread(target=lambda: result.setdefault(
            "r", client.get("/v1/segments/heavy/count", headers=api.admin)))
        t.start()
        slots = client.app.state.ctx.extras  # type: ignore[attr-defined]
        while "query_slots" not in slots or not slots["query_slots"].running:
            time.sleep(0.02)
        r = client.get("/v1/segments/light/count", headers=api.admin)
        assert r.status_code == 429 and r.json()["code"] == "too_many_queries"
        assert "segments.query_concurrency_per_key = 1" in r.json()["message"]
        assert 1 <= int(r.headers["retry-after"]) <= 5
        r = client.get("/v1/segments/light/explain", headers=api.other)  # another key: the server's cap
        assert r.status_code == 429 and "segments.query_concurrency = 1" in r.json()["message"]
        assert "retry-after" in r.headers
        t.join()
        assert result["r"].status_code == 422
        # once the heavy one is stopped, the slot is free again
        assert client.get("/v1/segments/light/count", headers=api.admin).status_code == 200


def test_explain_shows_the_estimated_cost(storage: Storage) -> None:
    api = Api(storage)
    with TestClient(api.app) as client:
        api.create(client, "buyers", 'count(track "Order Completed" in last 30d) >= 1 and trait.country = "DE" '
                                     'and sum(track "Order Completed".revenue where properties.coupon exists) > 5')
        r = client.get("/v1/segments/buyers/explain", headers=api.admin)
        assert r.status_code == 200, r.text
        cost = r.json()["cost"]
        assert cost["model"] == {"event_scans": 1, "aggregates": 2, "windows": 1, "event_filters": 1, "joins": 2,
                                 "conditions": 4, "score": 10 + 4 + 1 + 5 + 6 + 4}
        engine = cost["engine"]
        assert engine["engine"] == storage.backend and engine["operators"] >= 3 and engine["estimated_rows"] >= 1
        assert (engine["planner_cost"] is not None) == (storage.backend == "postgres")


def test_the_cost_model_counts_work_after_inlining_references() -> None:
    light = estimate(parse('trait.country = "DE"'))
    assert (light.event_scans, light.joins, light.conditions, light.score) == (0, 1, 1, 4)
    same_twice = estimate(parse('count(track "A" in last 7d) >= 1 and count(track "A" in last 7d) < 9'))
    assert (same_twice.aggregates, same_twice.event_scans, same_twice.windows) == (1, 1, 1)
    ref = estimate(parse('in segment("x") or interest("k") > 0.5'),
                   {"x": parse('count(page where properties.path contains "/a") = 0')})
    assert (ref.aggregates, ref.event_filters, ref.joins, ref.conditions) == (1, 1, 2, 3)
    assert ref.score > light.score
    assert "1 event scan" in ref.text()


def test_an_explain_sql_is_built_with_sqlglot() -> None:
    # the test-only function compiles through the registry like any other (no glued strings in takt)
    assert isinstance(sqlglot.parse_one(SLOW["duckdb"], read="duckdb"), exp.Expression)


def test_the_cli_runs_counts_under_the_budget_and_explains_the_cost(
        ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811 - ws: the imported fixture
    monkeypatch.setenv("TAKT_SEGMENTS__QUERY_TIMEOUT_SECONDS", "1")
    code, out = run(ws, "count", "test_slow() >= 0")
    assert code != 0 and "segments.query_timeout_seconds" in out and "Traceback" not in out
    code, out = run(ws, "count", 'trait.country = "DE"')
    assert code == 0 and "profiles match" in out
    code, out = run(ws, "explain", 'count(track "Order Completed" in last 30d) >= 2', "--dialect", "duckdb")
    assert code == 0 and out.splitlines()[1] == (
        "cost 17: 1 event scan, 1 aggregate (1 windowed, 0 with an event filter), 1 join, 1 condition")
