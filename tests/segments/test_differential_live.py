"""Live membership against compiled SQL: random people and events go through the real log, profile fold and
live membership (:class:`takt.segments.live.LiveSegments`); at several instants — random ones and the exact
instants live membership scheduled a flip for, and a microsecond before each — the members it holds equal the
members the compiled SQL selects at that ``now`` on DuckDB and on PostgreSQL, for definitions covering every
form of the language and computed traits."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from takt.clock import FixedClock
from takt.events.model import Event
from takt.profiles.config import ProfileConfig
from takt.projections.runner import ProfileRunner
from takt.projections.tables import profile_view
from takt.segments.compile import to_sql
from takt.segments.computed import materialize_computed, parse_computed
from takt.segments.live import LiveSegments, event_row
from takt.segments.parser import parse
from takt.segments.view import ProfileView
from takt.storage.duckdb import DuckDBStorage
from tests.segments.db import DuckDB, Postgres

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)

DEFINITIONS = {
    # traits and provenance
    "de": 'trait.country = "DE"',
    "adult": "trait.age >= 18",
    "self_declared": "trait.country from customer_provided",
    "not_vip": "not trait.vip = true",
    # aggregates, windows, property filters, between
    "buyers": 'count(track "Order Completed" in last 30d) >= 1',
    "big_week": 'sum(track "Order Completed".revenue in last 7d) > 50',
    "small_avg": 'avg(track "Order Completed".revenue) < 40',
    "cheap_min": 'min(track "Order Completed".revenue in last 60d) <= 10',
    "big_max": 'max(track "Order Completed".revenue in last 90d) >= 60',
    "no_krabi": 'count(page where properties.path contains "/krabi" in last 14d) = 0 and count(page) >= 1',
    "season": 'count(track "Order Completed" between 2026-11-20 and 2026-12-10) >= 1',
    # stats, touchpoints, interests
    "recent": "last_seen within 3d",
    "old": "first_seen before 2026-11-20",
    "new": "first_seen after 2026-11-25",
    "app_fans": 'touchpoint("app").count >= 2',
    "app_recent": 'touchpoint("app").last_at within 5d',
    "krabi": 'interest("destination:krabi") > 0.8',
    "krabi_top": 'top_interest = "destination:krabi"',
    "shifted": "interest_shifted within 10d",
    # references
    "foreign_buyers": 'in segment("buyers") and not in segment("de")',
    # computed traits
    "valuable": "trait.ltv > 60",
    "berliners": 'trait.fav_store = "berlin"',
    "online_last": 'trait.last_store = "online"',
}
COMPUTED = [parse_computed('ltv = sum(track "Order Completed".revenue in last 30d)'),
            parse_computed('fav_store = mode(track "Order Completed".store in last 60d)'),
            parse_computed('last_store = last(track "Order Completed".store)')]
INTEREST_THRESHOLDS = frozenset({"krabi"})
TREES = {name: parse(text) for name, text in DEFINITIONS.items()}
LOOKUP = dict(TREES)
SETTINGS = settings(max_examples=12, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])

USERS = ("u0", "u1", "u2", "u3")
offsets = st.builds(lambda d, h: timedelta(days=d, hours=h), st.integers(-120, 40), st.sampled_from([0, 3, 11]))


@st.composite
def people(draw: st.DrawFn) -> list[Event]:
    out: list[Event] = []
    n = draw(st.integers(3, 22))
    for i in range(n):
        uid = draw(st.sampled_from(USERS))
        at = T0 + draw(offsets)
        common: dict[str, Any] = {"message_id": f"m{i}", "source": "web", "timestamp": at, "received_at": at,
                                  "user_id": uid}
        what = draw(st.sampled_from(["identify", "order", "order", "page", "app", "anon"]))
        if what == "identify":
            traits = draw(st.dictionaries(st.sampled_from(["country", "age", "vip"]),
                                          st.sampled_from(["DE", "FR", 17, 30, True, False]), min_size=1))
            out.append(Event(kind="identify", traits=traits,
                             provenance=draw(st.sampled_from(["customer_provided", "observed"])), **common))
        elif what == "order":
            props = {"revenue": draw(st.sampled_from([5, 10, 25, 40, 60, 80])),
                     "store": draw(st.sampled_from(["berlin", "online", "paris"]))}
            out.append(Event(kind="track", event="Order Completed", properties=props, **common))
        elif what == "page":
            path = draw(st.sampled_from(["/trips/krabi", "/home"]))
            props = {"path": path} | ({"interests": ["destination:krabi"]} if "krabi" in path else {})
            out.append(Event(kind="page", name="Trip", properties=props, **common))
        elif what == "app":
            out.append(Event(kind="track", event="Products Searched", context={"channel": "app"},
                             properties={"interests": ["destination:krabi"]}, **common))
        else:  # an anonymous visit, later linked: profiles merge
            common.pop("user_id")
            out.append(Event(kind="track", event="Order Completed", anonymous_id=f"a-{uid}",
                             properties={"revenue": 25, "store": "online"}, **common))
            out.append(Event(kind="identify", message_id=f"m{i}-link", source="web", timestamp=at, received_at=at,
                             user_id=uid, anonymous_id=f"a-{uid}"))
    return out


@pytest.fixture(scope="session")
def pg_or_none(request: pytest.FixtureRequest) -> Postgres | None:
    """The session's PostgreSQL database when a server is set (CI requires one), else DuckDB alone."""
    from tests.conftest import PG_URL

    return request.getfixturevalue("pg") if PG_URL else None  # type: ignore[no-any-return]


def views_of(runner: ProfileRunner) -> list[ProfileView]:
    out = []
    with runner.lock:
        for pid in runner.profile_ids():
            state = runner.projector.profile(pid)
            assert state is not None
            rows = [event_row(s) for s in runner.storage.log.get(list(state.positions))]
            out.append(profile_view(state, rows, runner.config))
    return out


def sql_members(db: DuckDB | Postgres, views: list[ProfileView], now: datetime) -> dict[str, set[str]]:
    db.load(views)
    materialize_computed(db.con, COMPUTED, now=now, dialect_name=db.kind)
    return {name: db.members(to_sql(tree, now=now, dialect_name=db.kind, segments=LOOKUP, pretty=False))
            for name, tree in TREES.items()}


def check_now(runner: ProfileRunner, live: LiveSegments, dbs: list[DuckDB | Postgres], now: datetime,
              skip: frozenset[str] = frozenset()) -> int:
    runner.clock.now = now  # type: ignore[attr-defined]
    runner.catch_up()
    runner.tick(now)
    runner.catch_up()
    views = views_of(runner)
    live_members = {name: live.members(name) for name in TREES}
    for db in dbs:
        want = sql_members(db, views, now)
        for name in set(TREES) - skip:
            assert live_members[name] == want[name], (
                f"{db.kind} at {now.isoformat()}: live and SQL disagree on {name}: {DEFINITIONS[name]}\n"
                f"live {sorted(live_members[name])}, SQL {sorted(want[name])}")
    return sum(len(m) for m in live_members.values())


@SETTINGS
@given(events=people(), steps=st.lists(st.integers(1, 24 * 20), min_size=1, max_size=4))
def test_live_members_equal_sql_members_over_time(duck: DuckDB, pg_or_none: Postgres | None,
                                                  events: list[Event], steps: list[int]) -> None:
    dbs: list[DuckDB | Postgres] = [duck] + ([pg_or_none] if pg_or_none is not None else [])
    with tempfile.TemporaryDirectory() as tmp, DuckDBStorage(Path(tmp) / "t.duckdb") as storage:
        runner = ProfileRunner(storage, ProfileConfig(), FixedClock(T0))
        live = LiveSegments(lambda: {name: (1, tree) for name, tree in TREES.items()}, computed=lambda: COMPUTED)
        runner.add_listener(live)
        storage.log.append(events)
        now = T0
        check_now(runner, live, dbs, now)
        for hours in steps:
            # the next instants live membership scheduled: just before and exactly at the earliest of them
            due = sorted(t for t in live._due.values() if t > now)[:1]
            for t in due:
                # windows and `within` flip exactly at their instant; an interest's decay is scheduled within a
                # millisecond after it crosses the threshold (docs/segments.md), so it is compared 2 ms before
                check_now(runner, live, dbs, t - timedelta(milliseconds=2))
                check_now(runner, live, dbs, t - timedelta(microseconds=1), skip=INTEREST_THRESHOLDS)
                check_now(runner, live, dbs, t)
            now = max([now, *due]) + timedelta(hours=hours)
            check_now(runner, live, dbs, now)
