"""The event log contract: every storage backend must pass every test here."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from takt.storage.base import Storage
from tests.conftest import BACKENDS, open_backend
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


# ---- atomicity: an append that fails midway stores nothing ----


def _assert_failed_append_left_no_trace(storage: Storage, good: list, before: int) -> None:
    assert storage.log.count() == before
    assert not any(storage.log.contains(e.source, e.message_id) for e in good)
    # nothing half-done blocks the next append: the same events go in whole, after what was there
    head = storage.log.head()
    result = storage.log.append(good)
    assert result.stored == len(good) and result.duplicates == 0
    rows = storage.log.read(after=head)
    assert [r.event for r in rows] == good
    positions = [r.position for r in storage.log.read(limit=1_000_000)]
    assert positions == sorted(positions) and len(set(positions)) == len(positions) == before + len(good)


def test_append_whose_event_cannot_be_serialized_stores_nothing(storage: Storage) -> None:
    storage.log.append([ev(0)])
    good = [ev(i) for i in range(1, 6)]
    bad = ev(99, properties={"not json": object()})
    with pytest.raises(Exception):  # noqa: B017 - whatever the serializer raises
        storage.log.append([*good[:3], bad, *good[3:]])
    _assert_failed_append_left_no_trace(storage, good, before=1)


def test_append_failing_inside_the_database_midway_stores_nothing(storage: Storage) -> None:
    """The 4th row breaks a NOT NULL constraint while the insert runs: the rows before it are rolled back."""
    storage.log.append([ev(0)])
    good = [ev(i) for i in range(1, 6)]
    broken = ev(99, provenance=None)
    with pytest.raises(Exception):  # noqa: B017 - each database names its constraint error differently
        storage.log.append([*good[:3], broken, *good[3:], ev(0)])
    _assert_failed_append_left_no_trace(storage, good, before=1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_durable_across_reopen_on_every_backend(backend: str, tmp_path, request: pytest.FixtureRequest) -> None:
    s = open_backend(backend, tmp_path, request)
    try:
        first = s.log.append([ev(i, properties={"i": i}) for i in range(3)])
    finally:
        s.close()
    s2 = open_backend(backend, tmp_path, request)
    try:
        assert s2.log.count() == 3 and s2.log.head() == first.last_position
        assert [r.event.properties for r in s2.log.read()] == [{"i": 0}, {"i": 1}, {"i": 2}]
        again = s2.log.append([ev(2), ev(3)])
        assert again.stored == 1 and again.duplicates == 1 and again.last_position > first.last_position
        assert s2.log.read(after=first.last_position)[0].event.message_id == "m-3"
    finally:
        s2.close()


def test_last_position_is_a_safe_cursor_after_a_duplicate_only_append(storage: Storage) -> None:
    first = storage.log.append([ev(i) for i in range(3)])
    again = storage.log.append([ev(1), ev(2)])
    assert again.stored == 0 and again.duplicates == 2
    assert again.last_position >= first.last_position >= storage.log.head()
    assert storage.log.read(after=again.last_position) == []
    later = storage.log.append([ev(3)])
    assert [r.event.message_id for r in storage.log.read(after=again.last_position)] == ["m-3"]
    assert later.last_position == storage.log.head()


def test_awkward_json_round_trips_exactly(storage: Storage) -> None:
    props = {
        "nul": "a\u0000b", "key\u0000with nul": 1, "emoji": "🎉 ✓", "big": 2**62, "neg": -(2**53) - 1,
        "float": 0.1, "tiny": 5e-324, "nested": {"z": [1, {"y": None}], "a": True}, "": "empty key",
        "quote\"and\\backslash": "\"\\", "newline": "a\nb\tc",
    }
    events = [ev(0, properties=props, context={"ip": "::1"}), ev(1, kind="identify", traits={"b": 1, "a": 2})]
    storage.log.append(events)
    assert [r.event for r in storage.log.read()] == events


@pytest.mark.postgres
def test_postgres_refuses_nul_in_an_indexed_field_and_stores_nothing(pg_url: str) -> None:
    """PostgreSQL TEXT cannot hold NUL: the append is refused up front with a clear error."""
    from takt.errors import TaktError
    from takt.storage.postgres import PostgresStorage

    with PostgresStorage(pg_url) as s:
        with pytest.raises(TaktError, match="NUL") as info:
            s.log.append([ev(0), ev(1, message_id="m\u0000x")])
        assert info.value.code == "invalid_event" and info.value.errors[0]["index"] == 1
        assert s.log.count() == 0
        assert s.log.append([ev(0)]).stored == 1


def test_read_matching_filters_by_kind_or_event_name_within_a_position_range(storage: Storage) -> None:
    events = []
    for i in range(30):
        if i % 7 == 0:
            events.append(ev(i, kind="identify", traits={"email": f"p{i}@example.com"}))
        elif i % 5 == 0:
            events.append(ev(i, event="Consent Updated", properties={"n": i}))
        else:
            events.append(ev(i, event="Product Viewed"))
    storage.log.append(events)
    everything = storage.log.read(limit=100)
    lo, hi = everything[3].position, everything[24].position
    got = storage.log.read_matching(lo, hi, kinds=("identify",), events=("Consent Updated",))
    want = [s for s in everything if lo < s.position <= hi
            and (s.event.kind == "identify" or s.event.event == "Consent Updated")]
    assert got == want and len(want) >= 5  # decoded in full (sealed traits included), in position order
    assert storage.log.read_matching(lo, hi) == []  # nothing asked, nothing read
    assert storage.log.read_matching(hi, hi, kinds=("track",)) == []


def test_paging_across_gaps_left_by_duplicates_misses_nothing(storage: Storage) -> None:
    # duplicates inside later appends leave holes in the positions of some backends
    storage.log.append([ev(i) for i in range(10)])
    for start in range(10, 40, 6):
        storage.log.append([ev(i) for i in range(start - 4, start + 6)])  # 4 repeats, 6 new each time
    everything = storage.log.read(limit=1000)
    assert [e.event.message_id for e in everything] == [f"m-{i}" for i in range(40)]
    for limit in (1, 3, 7, 40):
        seen, after = [], 0
        while page := storage.log.read(after=after, limit=limit):
            assert len(page) <= limit
            seen.extend(page)
            after = page[-1].position
        assert seen == everything


def test_count_by_kind_adds_up_to_count(storage: Storage) -> None:
    storage.log.append([ev(0, kind="identify", user_id="u1"), ev(1), ev(2), ev(3, kind="page")])
    by_kind = storage.log.count_by_kind()
    assert by_kind == {"identify": 1, "track": 2, "page": 1}
    assert sum(by_kind.values()) == storage.log.count()
