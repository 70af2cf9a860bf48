"""Concurrent writers and a reader that follows the log by position.

The trap: a backend that hands out positions at insert time but lets transactions commit in any order lets a
reader see position 11 before 10 commits; the reader then reads ``after=11`` and never sees 10. These tests
run several writers at once (on PostgreSQL each with its own ``PostgresStorage``, as separate ``takt serve``
processes would; on DuckDB threads sharing one storage, since DuckDB allows one process per file) while a
reader follows with ``read(after=last)``, and check that it saw every event exactly once.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from takt.events.model import Event
from takt.log.base import AppendResult
from takt.storage.base import Storage
from tests.factories import ev

pytestmark = pytest.mark.timeout(180)

BACKENDS = ["duckdb", "postgres"]


@pytest.fixture(params=BACKENDS)
def open_writer(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Storage]]:
    """A factory of storages for concurrent writers: a new ``PostgresStorage`` (own connections) per writer
    on PostgreSQL; on DuckDB the one storage shared by every thread."""
    opened: list[Storage] = []
    if request.param == "duckdb":
        from takt.storage.duckdb import DuckDBStorage

        shared = DuckDBStorage(tmp_path / "takt.duckdb")
        opened.append(shared)

        def factory() -> Storage:
            return shared
    else:
        from takt.storage.postgres import PostgresStorage

        url = request.getfixturevalue("pg_url")

        def factory() -> Storage:
            s = PostgresStorage(url)
            s.log.before_commit = _jitter  # type: ignore[attr-defined]
            opened.append(s)
            return s

    try:
        yield factory
    finally:
        for s in opened:
            s.close()


def _jitter(batch: Sequence[Event]) -> None:
    """Sleep inside the append transaction, after the insert, so commits land in a shuffled order."""
    time.sleep(random.uniform(0, 0.004))


def _run_threads(targets: list[Callable[[], None]], timeout: float = 120) -> None:
    errors: list[BaseException] = []

    def wrap(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except BaseException as e:
                errors.append(e)
        return run

    threads = [threading.Thread(target=wrap(t), daemon=True) for t in targets]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "a thread did not finish in time"
    if errors:
        raise errors[0]


class Follower:
    """Follows the log by position, as a projection does, checking every page as it goes."""

    def __init__(self, storage: Storage):
        self.storage = storage
        self.last = 0
        self.seen: list[tuple[int, str, str]] = []

    def poll(self) -> int:
        head = self.storage.log.head()
        page = self.storage.log.read(after=self.last, limit=random.choice([1, 7, 50, 500]))
        for row in page:
            assert row.position > self.last, "positions must increase"
            self.last = row.position
            self.seen.append((row.position, row.event.source, row.event.message_id))
        if not page:
            # head() only reports positions that are safe to read up to: nothing visible lies beyond it,
            # and having read everything up to our cursor, the head cannot be past it
            assert head <= self.last
        return len(page)


def test_reader_following_concurrent_writers_misses_nothing(open_writer: Callable[[], Storage]) -> None:
    writers, batches, size = 4, 25, 20
    shared_ids = [f"shared-{i}" for i in range(60)]
    stores = [open_writer() for _ in range(writers)]
    reader = Follower(open_writer())
    results: list[AppendResult] = []
    lock = threading.Lock()
    done = threading.Event()

    def write(w: int) -> None:
        storage = stores[w]
        rnd = random.Random(w)
        for b in range(batches):
            batch = [ev(i, message_id=f"w{w}-b{b}-{i}") for i in range(size)]
            # every writer also sends the same shared messageIds, each writer in its own order
            batch += [ev(0, message_id=m) for m in rnd.sample(shared_ids, 6)]
            rnd.shuffle(batch)
            result = storage.log.append(batch)
            with lock:
                results.append(result)

    def read() -> None:
        while not done.is_set():
            if not reader.poll():
                time.sleep(0.001)

    def writers_then_done() -> None:
        try:
            _run_threads([lambda w=w: write(w) for w in range(writers)])
        finally:
            done.set()

    _run_threads([writers_then_done, read])
    while reader.poll():
        pass

    everything = [(r.position, r.event.source, r.event.message_id) for r in reader.storage.log.iter()]
    assert reader.seen == everything, "the follower skipped or repeated events"
    keys = [(s, m) for _, s, m in everything]
    assert len(keys) == len(set(keys)), "a (source, messageId) was stored twice"
    own = {m for _, _, m in everything if m.startswith("w")}
    assert len(own) == writers * batches * size
    sent_shared = {m for _, _, m in everything if m.startswith("shared-")}
    assert sent_shared <= set(shared_ids)
    assert sum(r.stored for r in results) == len(everything) == reader.storage.log.count()
    assert sum(r.stored + r.duplicates for r in results) == writers * batches * (size + 6)


def test_concurrent_appends_of_the_same_message_ids_store_each_once(open_writer: Callable[[], Storage]) -> None:
    writers = 5
    ids = list(range(300))
    stores = [open_writer() for _ in range(writers)]
    results: list[AppendResult] = []
    lock = threading.Lock()
    start = threading.Barrier(writers)

    def write(w: int) -> None:
        rnd = random.Random(100 + w)
        mine = ids[:]
        rnd.shuffle(mine)
        start.wait()
        for k in range(0, len(mine), 37):
            r = stores[w].log.append([ev(i, properties={"writer": w}) for i in mine[k : k + 37]])
            with lock:
                results.append(r)

    _run_threads([lambda w=w: write(w) for w in range(writers)])
    log = stores[0].log
    assert log.count() == len(ids)
    assert sorted(r.event.message_id for r in log.iter()) == sorted(f"m-{i}" for i in ids)
    assert sum(r.stored for r in results) == len(ids)
    assert sum(r.duplicates for r in results) == (writers - 1) * len(ids)


# ---- PostgreSQL: the late commit, step by step ----


def _late_commit_scenario(storage_a: Storage, storage_b: Storage, reader: Storage,
                          b_blocked: bool) -> tuple[list[str], list[int]]:
    """Writer A inserts and holds its transaction open; writer B appends meanwhile; a reader polls; then A
    commits. Returns the messageIds the reader saw following by position, and A's and B's last positions.
    ``b_blocked``: whether B is expected to wait for A."""
    a_inserted = threading.Event()
    release_a = threading.Event()

    def hold(batch: Sequence[Event]) -> None:
        a_inserted.set()
        assert release_a.wait(30)

    storage_a.log.before_commit = hold  # type: ignore[attr-defined]
    results: dict[str, AppendResult] = {}

    def write_a() -> None:
        results["a"] = storage_a.log.append([ev(i, message_id=f"a-{i}") for i in range(3)])

    def write_b() -> None:
        results["b"] = storage_b.log.append([ev(i, message_id=f"b-{i}") for i in range(3)])

    follower = Follower(reader)
    ta = threading.Thread(target=write_a, daemon=True)
    ta.start()
    assert a_inserted.wait(30)
    tb = threading.Thread(target=write_b, daemon=True)
    tb.start()
    # give B every chance to commit before A, then look, as a projection polling the log would
    tb.join(1.0 if b_blocked else 30)
    assert tb.is_alive() == b_blocked
    follower.poll()
    release_a.set()
    ta.join(30)
    tb.join(30)
    assert not ta.is_alive() and not tb.is_alive()
    while follower.poll():
        pass
    return [m for _, _, m in follower.seen], [results["a"].last_position, results["b"].last_position]


@pytest.fixture
def three_pg(pg_url: str) -> Iterator[tuple[Storage, Storage, Storage]]:
    from takt.storage.postgres import PostgresStorage

    stores = (PostgresStorage(pg_url), PostgresStorage(pg_url), PostgresStorage(pg_url))
    try:
        yield stores
    finally:
        for s in stores:
            s.close()


@pytest.mark.postgres
def test_postgres_reader_does_not_skip_a_late_commit(three_pg: tuple[Storage, Storage, Storage]) -> None:
    a, b, reader = three_pg
    seen, (last_a, last_b) = _late_commit_scenario(a, b, reader, b_blocked=True)
    assert sorted(seen) == sorted([f"a-{i}" for i in range(3)] + [f"b-{i}" for i in range(3)])
    # B had to wait for A: positions follow commit order
    assert last_a < last_b
    assert seen == [f"a-{i}" for i in range(3)] + [f"b-{i}" for i in range(3)]


@pytest.mark.postgres
def test_postgres_without_the_append_lock_a_reader_would_skip(
    three_pg: tuple[Storage, Storage, Storage], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: with the append lock taken out, the scenario above does lose A's events, so the test
    above really exercises the trap."""
    from takt.storage.postgres import PostgresEventLog

    monkeypatch.setattr(PostgresEventLog, "_lock_appends", lambda self, con: None)
    a, b, reader = three_pg
    seen, (last_a, last_b) = _late_commit_scenario(a, b, reader, b_blocked=False)
    assert last_a < last_b  # A drew its positions first ...
    assert seen == [f"b-{i}" for i in range(3)]  # ... committed last, and the follower skipped them
    assert reader.log.count() == 6


@pytest.mark.postgres
def test_postgres_head_waits_for_the_open_append(three_pg: tuple[Storage, Storage, Storage]) -> None:
    """While an append is open, head() and read() show only what is committed."""
    a, _, reader = three_pg
    a.log.append([ev(0, message_id="before")])
    inside: dict[str, object] = {}

    def peek(batch: Sequence[Event]) -> None:
        inside["head"] = reader.log.head()
        inside["read"] = [r.event.message_id for r in reader.log.read()]
        inside["count"] = reader.log.count()

    a.log.before_commit = peek  # type: ignore[attr-defined]
    result = a.log.append([ev(i, message_id=f"x-{i}") for i in range(3)])
    assert inside == {"head": 1, "read": ["before"], "count": 1}
    assert reader.log.head() == result.last_position == 4


@pytest.mark.postgres
def test_postgres_append_that_fails_before_commit_stores_nothing(three_pg: tuple[Storage, Storage, Storage]) -> None:
    a, b, _ = three_pg
    a.log.append([ev(0)])

    def boom(batch: Sequence[Event]) -> None:
        raise RuntimeError("forced failure after the insert")

    a.log.before_commit = boom  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError, match="forced failure"):
        a.log.append([ev(i) for i in range(1, 6)])
    assert b.log.count() == 1 and not b.log.contains("web", "m-1")
    # the lock was released with the rollback, and the connection went back to the pool in a usable state
    a.log.before_commit = None  # type: ignore[attr-defined]
    assert b.log.append([ev(i) for i in range(1, 6)]).stored == 5
    assert a.log.append([ev(i) for i in range(1, 7)]).stored == 1
    positions = [r.position for r in a.log.read()]
    assert positions == sorted(positions) and len(positions) == 7


@pytest.mark.postgres
def test_postgres_many_processes_opening_an_empty_database_at_once(pg_url: str) -> None:
    """Schema creation is serialized: storages opened at once on an empty database all succeed."""
    from takt.storage.postgres import PostgresStorage

    opened: list[Storage] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def open_one() -> None:
        start.wait()
        s = PostgresStorage(pg_url)
        with lock:
            opened.append(s)

    try:
        _run_threads([open_one] * 8)
        assert len(opened) == 8
        assert all(s.log.count() == 0 for s in opened)
    finally:
        for s in opened:
            s.close()


# ---- PostgreSQL: separate processes, as several `takt serve` would be ----


def _process_writer(url: str, writer: int, batches: int, size: int, start: Any) -> None:
    from takt.storage.postgres import PostgresStorage

    storage = PostgresStorage(url)
    storage.log.before_commit = _jitter  # type: ignore[attr-defined]
    try:
        start.wait(60)  # all writers begin together, once every process has started
        for b in range(batches):
            batch = [ev(i, message_id=f"p{writer}-b{b}-{i}") for i in range(size)]
            batch += [ev(0, message_id=f"common-{(b + writer) % 10}")]
            storage.log.append(batch)
    finally:
        storage.close()


@pytest.mark.postgres
def test_postgres_writer_processes_and_a_following_reader(pg_url: str) -> None:
    from takt.storage.postgres import PostgresStorage

    writers, batches, size = 3, 40, 10
    reader_storage = PostgresStorage(pg_url)  # creates the schema before the writers start
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(writers + 1)
    procs = [ctx.Process(target=_process_writer, args=(pg_url, w, batches, size, start)) for w in range(writers)]
    try:
        follower = Follower(reader_storage)
        for p in procs:
            p.start()
        start.wait(60)
        deadline = time.monotonic() + 120
        while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
            if not follower.poll():
                time.sleep(0.002)
        for p in procs:
            p.join(max(0.0, deadline - time.monotonic()))
        assert [p.exitcode for p in procs] == [0] * writers
        while follower.poll():
            pass
        everything = [(r.position, r.event.source, r.event.message_id) for r in reader_storage.log.iter()]
        assert follower.seen == everything
        ids = [m for _, _, m in everything]
        assert len(ids) == len(set(ids)) == writers * batches * size + 10
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
        reader_storage.close()
