"""Segments on a real workspace: the profile projection materialized as tables; the compiled SQL and the live
evaluator agree on who is in, and `takt segment count` reports it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from click.testing import CliRunner

from takt.cli.main import main
from takt.clock import FixedClock
from takt.events.model import Event
from takt.profiles.config import ProfileConfig
from takt.projections.runner import ProfileRunner
from takt.projections.tables import profile_view
from takt.segments import evaluate, parse, to_sql
from takt.segments.view import EventRow
from takt.storage.duckdb import DuckDBStorage

NOW = datetime(2026, 11, 20, tzinfo=UTC)

DEFINITIONS = [
    'trait.country = "DE"',
    "trait.email exists",
    "trait.email from customer_provided",
    'count(track "Order Completed" in last 365d) >= 2',
    'sum(track "Order Completed".revenue in last 90d) > 100',
    'count(page where properties.path contains "/krabi" in last 30d) = 0',
    "last_seen within 30d",
    'touchpoint("app").count >= 1',
    'interest("destination:new-york") > 0.4',
    'top_interest = "destination:new-york"',
    'trait.country in ["DE", "FR"] and not trait.email exists',
]


def people() -> list[Event]:
    out: list[Event] = []
    n = 0

    def add(**kw: object) -> None:
        nonlocal n
        at = kw.pop("at")
        assert isinstance(at, datetime)
        out.append(Event(message_id=f"e{n}", source="web", timestamp=at, received_at=at, **kw))  # type: ignore[arg-type]
        n += 1

    for i in range(12):
        uid = f"u{i}"
        country = ["DE", "FR", "NL"][i % 3]
        traits = {"country": country} | ({"email": f"{uid}@example.com"} if i % 4 else {})
        add(kind="identify", user_id=uid, traits=traits, at=NOW - timedelta(days=200 - i),
            provenance="customer_provided" if i % 2 else "third_party")
        for k in range(i % 4):
            add(kind="track", event="Order Completed", user_id=uid, at=NOW - timedelta(days=10 + 40 * k),
                properties={"revenue": 30 + 20 * i, "order_id": f"{uid}-{k}"}, provenance="customer_provided")
        if i % 3 == 0:
            add(kind="page", name="Krabi", user_id=uid, at=NOW - timedelta(days=5 + i),
                properties={"path": "/trips/krabi"}, context={"channel": "app"}, provenance="customer_provided")
        if i % 5 == 0:
            for k in range(3):
                add(kind="track", event="Products Searched", user_id=uid, at=NOW - timedelta(days=2 + k),
                    properties={"query": "new york", "interests": ["destination:new-york"]},
                    provenance="customer_provided")
    return out


def test_sql_on_materialized_tables_equals_live_evaluation(tmp_path: Path) -> None:
    storage = DuckDBStorage(tmp_path / "t.duckdb")
    try:
        storage.log.append(people())
        config = ProfileConfig()
        runner = ProfileRunner(storage, config, FixedClock(NOW))
        runner.rebuild()
        states = [runner.projector.profile(pid) for pid in runner.profile_ids()]
        assert len(states) == 12
        # the tables the projection persisted with its state (no separate materialization)
        views = []
        for s in states:
            assert s is not None
            rows = [EventRow(kind=e.event.kind, ts=e.event.timestamp, event=e.event.event, name=e.event.name,
                             properties=orjson.loads(orjson.dumps(e.event.properties)))
                    for e in storage.log.get(s.positions)]
            views.append(profile_view(s, rows, config))
        nonempty = 0
        for definition in DEFINITIONS:
            node = parse(definition)
            sql = to_sql(node, now=NOW, dialect_name="duckdb", pretty=False)
            got = {r[0] for r in storage.con.execute(sql).fetchall()}
            live = {v.profile_id for v in views if evaluate(node, v, NOW)}
            assert got == live, definition
            nonempty += bool(got) and got != {v.profile_id for v in views}
        assert nonempty >= 6, "the definitions must discriminate, not match everyone or no one"
    finally:
        storage.close()


def test_segment_count_command(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    r = CliRunner().invoke(main, ["init", str(ws)])
    assert r.exit_code == 0
    s = DuckDBStorage(ws / "takt.duckdb")
    s.log.append(people())
    s.close()
    r = CliRunner().invoke(main, ["segment", "count", "-w", str(ws), 'trait.country = "DE"',
                                  "--at", NOW.isoformat()])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("4 profiles match (duckdb")
    r = CliRunner().invoke(main, ["segment", "count", "-w", str(ws), 'trait.contry = "DE"'])
    assert r.exit_code == 2
    assert "did you mean 'country'" in r.output and "line 1, column" in r.output
