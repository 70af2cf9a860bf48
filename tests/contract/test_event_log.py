"""The event log contract: every storage backend must pass every test here."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from takt.storage.base import Storage
from tests.factories import ev


def test_empty_log(storage: Storage) -> None:
    assert storage.log.count() == 0
    assert storage.log.head() == 0
    assert storage.log.read() == []


def test_append_assigns_increasing_positions_and_round_trips(storage: Storage) -> None:
    events = [ev(i, properties={"n": i, "nested": {"a": [1, "x"]}}) for i in range(5)]
    result = storage.log.append(events)
    assert result.stored == 5 and result.duplicates == 0
    rows = storage.log.read()
    assert [r.event for r in rows] == events
    positions = [r.position for r in rows]
    assert positions == sorted(positions) and len(set(positions)) == 5
    assert storage.log.head() == positions[-1]
    assert result.last_position >= positions[-1]


def test_idempotent_on_source_and_message_id(storage: Storage) -> None:
    storage.log.append([ev(1), ev(2)])
    again = storage.log.append([ev(1), ev(2), ev(3)])
    assert again.stored == 1 and again.duplicates == 2
    assert storage.log.count() == 3
    # the same messageId from another source is another event
    other = storage.log.append([ev(1, source="app")])
    assert other.stored == 1
    assert storage.log.contains("app", "m-1") and storage.log.contains("web", "m-1")
    assert not storage.log.contains("app", "m-2")


def test_first_of_duplicates_within_one_append_wins(storage: Storage) -> None:
    first = ev(1, properties={"v": "first"})
    second = ev(1, properties={"v": "second"})
    result = storage.log.append([first, second])
    assert result.stored == 1 and result.duplicates == 1
    assert storage.log.read()[0].event.properties == {"v": "first"}


def test_read_after_and_limit_pages_through_everything(storage: Storage) -> None:
    storage.log.append([ev(i) for i in range(25)])
    seen = []
    after = 0
    while True:
        page = storage.log.read(after=after, limit=7)
        if not page:
            break
        assert len(page) <= 7
        seen.extend(page)
        after = page[-1].position
    assert [s.event.message_id for s in seen] == [f"m-{i}" for i in range(25)]
    assert [s.event.message_id for s in storage.log.iter(batch=4)] == [f"m-{i}" for i in range(25)]


def test_message_id_of_100_characters_and_unicode(storage: Storage) -> None:
    mid = "é" * 50 + "x" * 50
    storage.log.append([ev(0, message_id=mid, user_id="ünïcode ✓")])
    (row,) = storage.log.read()
    assert row.event.message_id == mid and row.event.user_id == "ünïcode ✓"


def test_append_empty_is_a_no_op(storage: Storage) -> None:
    result = storage.log.append([])
    assert result.stored == 0
    assert storage.log.count() == 0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(min_value=0, max_value=30), max_size=40), st.integers(min_value=1, max_value=8))
def test_appending_in_any_chunks_twice_equals_once(storage: Storage, ids: list[int], chunk: int) -> None:
    """Ingesting twice equals once, however the events were batched."""
    before = storage.log.count()
    base = len(storage.log.read(limit=1_000_000))
    tag = f"h{before}-"
    events = [ev(i, message_id=tag + str(i)) for i in ids]
    for _ in range(2):
        for k in range(0, len(events), chunk):
            storage.log.append(events[k : k + chunk])
    rows = storage.log.read(after=0, limit=1_000_000)[base:]
    got = [r.event.message_id for r in rows]
    expected = list(dict.fromkeys(e.message_id for e in events))
    assert got == expected


def test_storage_is_durable_across_reopen(tmp_path, request: pytest.FixtureRequest) -> None:
    from takt.storage.duckdb import DuckDBStorage

    s = DuckDBStorage(tmp_path / "x.duckdb")
    s.log.append([ev(i) for i in range(3)])
    s.close()
    s2 = DuckDBStorage(tmp_path / "x.duckdb")
    try:
        assert s2.log.count() == 3
        s2.log.append([ev(3)])
        positions = [r.position for r in s2.log.read()]
        assert positions == sorted(positions) and len(set(positions)) == 4
    finally:
        s2.close()
