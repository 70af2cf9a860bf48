"""The segment contract tables kept beside the profile store: maintained incrementally (each persist writes what
changed), they equal a whole build after any sequence of appends, merges, splits and erasures, on DuckDB and
PostgreSQL; a fresh process counts on them without reading old events back from the log."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from takt.clock import FixedClock
from takt.events.model import Event
from takt.identity.kinds import unmerge_event
from takt.profiles.config import ProfileConfig
from takt.projections.runner import ProfileRunner
from takt.projections.tables import WorkspaceTables, count_query
from takt.segments import compile_segment, parse
from takt.storage.base import Storage
from tests.conftest import open_backend

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
CONFIG = ProfileConfig()
TABLES = {
    "profiles": "profile_id, first_seen, last_seen, top_interest, interest_shifted_at",
    "profile_stored_traits": "profile_id, name, value, provenance",
    "profile_interests": "profile_id, key, score, as_of, half_life_days",
    "profile_touchpoints": "profile_id, touchpoint, count, last_at",
    "profile_events": "profile_id, position, kind, event, name, ts, properties",
}


def rows(storage: Storage, sql: str) -> list[tuple[Any, ...]]:
    if storage.backend == "postgres":
        with storage._pool.connection() as con:  # type: ignore[attr-defined]
            return list(con.execute(sql).fetchall())
    return list(storage.con.cursor().execute(sql).fetchall())  # type: ignore[attr-defined]


def contents(storage: Storage) -> dict[str, list[tuple[Any, ...]]]:
    return {name: sorted((tuple(r) for r in rows(storage, f"SELECT {cols} FROM {name}")), key=repr)
            for name, cols in TABLES.items()}


_seq = itertools.count()


def _ev(kind: str, *, user: str | None = None, anon: str | None = None, event: str | None = None,
        traits: dict[str, Any] | None = None, props: dict[str, Any] | None = None, day: int = 0) -> Event:
    n = next(_seq)
    at = NOW - timedelta(days=day, seconds=n)
    return Event(kind=kind, message_id=f"m-{n}", source="web", timestamp=at, received_at=at,
                 provenance="customer_provided", user_id=user, anonymous_id=anon,
                 event=event if kind == "track" else None, name="Home" if kind == "page" else None,
                 traits=traits or {}, properties=props or {}, context={"channel": "email"} if n % 3 else {})


# One operation: append events (of a user or an anonymous visitor), link an anonymous id to a user (a merge),
# give two users one email (a merge through a shared identifier), unmerge an anonymous id (a split), persist,
# erase a user, or start a new process (load from the store).
op = st.one_of(
    st.tuples(st.just("track"), st.integers(0, 2), st.booleans(), st.sampled_from(["Product Viewed", "Order Completed"]),
              st.integers(0, 40)),
    st.tuples(st.just("link"), st.integers(0, 2), st.integers(0, 2)),
    st.tuples(st.just("email"), st.integers(0, 2), st.integers(0, 3)),
    st.tuples(st.just("unmerge"), st.integers(0, 2)),
    st.tuples(st.just("persist")),
    st.tuples(st.just("erase"), st.integers(0, 2)),
    st.tuples(st.just("restart")),
)


def _events(o: tuple[Any, ...], tag: str) -> list[Event]:
    if o[0] == "track":
        _, who, anonymous, name, day = o
        ident = {"anon": f"{tag}-a{who}"} if anonymous else {"user": f"{tag}-u{who}"}
        return [_ev("track", event=name, day=day, props={"price": day + 0.5, "email": "x@example.test",
                                                          "interests": ["destination:krabi"]}, **ident)]
    if o[0] == "link":
        return [_ev("identify", user=f"{tag}-u{o[2]}", anon=f"{tag}-a{o[1]}", traits={"country": "DE"})]
    if o[0] == "email":
        return [_ev("identify", user=f"{tag}-u{o[1]}", traits={"email": f"{tag}-p{o[2]}@example.test",
                                                               "tier": str(o[2])})]
    if o[0] == "unmerge":
        return [unmerge_event(at=NOW, config=CONFIG.identity, identifier=f"anonymous_id:{tag}-a{o[1]}",
                              message_id=f"unmerge-{next(_seq)}")]
    return []


def _erase(storage: Storage, runner: ProfileRunner, user: str) -> None:
    """What an erasure does to the projection: the person's events destroyed in the log, then a rebuild."""
    state = runner.projector.profile_for(f"user_id:{user}")
    if state is None or not state.positions:
        return
    storage.log.erase(list(state.positions), [f"user_id:{user}"])
    runner.rebuild()


def _runner(storage: Storage) -> ProfileRunner:
    runner = ProfileRunner(storage, CONFIG, FixedClock(NOW), cache_size=3)  # states come and go from the store
    runner.load()
    return runner


def _check_against_whole_build(storage: Storage, runner: ProfileRunner) -> None:
    runner.save()
    store = storage.profiles
    assert store.tables_position() == store.position() == runner.position
    incremental = contents(storage)
    assert runner.build_tables(force=True)
    assert store.tables_position() == runner.position
    assert contents(storage) == incremental


def _run(storage: Storage, ops: list[tuple[Any, ...]]) -> None:
    tag = f"x{next(_seq)}"  # one storage serves every example: ids of this example are its own
    runner = _runner(storage)
    for o in ops:
        if o[0] == "persist":
            runner.save()
        elif o[0] == "restart":
            runner = _runner(storage)  # what was not persisted is lost, as in a crash: folded again
        elif o[0] == "erase":
            runner.catch_up()
            _erase(storage, runner, f"{tag}-u{o[1]}")
        else:
            storage.log.append(_events(o, tag))
            runner.catch_up(batch=2)
    runner.catch_up()
    _check_against_whole_build(storage, runner)


@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
def test_incremental_tables_equal_a_whole_build(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    storage = open_backend(backend, tmp_path, request)
    try:
        @settings(max_examples=40 if backend == "duckdb" else 15, deadline=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
        @given(st.lists(op, min_size=1, max_size=25))
        # merges and a split after the rows of those involved were written (found by the search; kept)
        @example([("link", 0, 0), ("track", 1, True, "Product Viewed", 40), ("link", 1, 0)])
        @example([("track", 1, True, "Product Viewed", 3), ("persist",), ("track", 1, False, "Order Completed", 2),
                  ("persist",), ("link", 1, 1)])
        @example([("track", 0, True, "Product Viewed", 3), ("link", 0, 0), ("persist",), ("unmerge", 0)])
        @example([("email", 0, 1), ("persist",), ("track", 1, False, "Order Completed", 2), ("email", 1, 1),
                  ("restart",), ("erase", 0)])
        def check(ops: list[tuple[Any, ...]]) -> None:
            _run(storage, ops)

        check()
    finally:
        storage.close()


@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
def test_merge_split_and_erasure_rekey_only_rows_of_those_involved(backend: str, tmp_path: Path,
                                                                     request: pytest.FixtureRequest) -> None:
    storage = open_backend(backend, tmp_path, request)
    try:
        tag = "fixed"
        ops: list[tuple[Any, ...]] = [
            ("track", 1, True, "Product Viewed", 3), ("track", 1, False, "Order Completed", 2), ("persist",),
            ("link", 1, 1), ("persist",), ("track", 2, False, "Product Viewed", 1), ("unmerge", 1), ("persist",),
            ("email", 1, 0), ("email", 2, 0), ("restart",), ("erase", 2),
        ]
        runner = _runner(storage)
        for o in ops:
            if o[0] == "persist":
                runner.save()
                _check_against_whole_build(storage, runner)
            elif o[0] == "restart":
                runner.save()
                runner = _runner(storage)
            elif o[0] == "erase":
                _erase(storage, runner, f"{tag}-u{o[1]}")
            else:
                storage.log.append(_events(o, tag))
                runner.catch_up()
        _check_against_whole_build(storage, runner)
        erased = rows(storage, "SELECT count(*) FROM profile_events WHERE properties LIKE '%fixed-p0%'")
        assert erased == [(0,)]
    finally:
        storage.close()


class _Spy:
    def __init__(self, log: Any) -> None:
        self.log = log
        self.got: list[int] = []

    def get(self, positions: Any) -> Any:
        self.got.extend(positions)
        return self.log.get(positions)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.log, name)


def test_a_fresh_process_counts_without_rederiving(tmp_path: Path) -> None:
    from takt.storage.duckdb import DuckDBStorage

    path = tmp_path / "takt.duckdb"
    storage = DuckDBStorage(path)
    try:
        storage.log.append([_ev("track", user=f"u{i % 7}", event="Order Completed", day=i % 20) for i in range(60)])
        runner = _runner(storage)
        runner.catch_up()
        runner.save()
        head = storage.log.head()
    finally:
        storage.close()

    storage = DuckDBStorage(path)
    try:
        spy = _Spy(storage.log)
        storage.log = spy  # type: ignore[misc]
        storage.log.append([_ev("track", user="u1", event="Order Completed"), _ev("track", user="u99")])
        runner = ProfileRunner(storage, CONFIG, FixedClock(NOW))
        runner.load()
        assert storage.profiles.tables_position() == head, "the tables were persisted with the store's position"
        runner.catch_up()  # the two new events only
        tables = WorkspaceTables(storage, runner, computed=[])
        assert tables.refresh() == storage.log.head()
        assert spy.got == [], "no event was read back from the log (old ones least of all)"
        tree = parse('count(track "Order Completed") >= 1')
        n = tables.rows(count_query(compile_segment(tree, now=NOW, dialect_name="duckdb")))[0][0]
        assert n == 7
    finally:
        storage.close()
