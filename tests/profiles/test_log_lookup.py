from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from takt.events.model import StoredEvent
from takt.profiles.lookup import LogEvents
from takt.profiles.projector import Projector
from takt.storage.duckdb import DuckDBStorage
from tests.factories import ev
from tests.profiles.helpers import CONFIG


def events() -> list:
    return [
        ev(1, user_id=None, anonymous_id="a", event="Order Completed", properties={"order_id": "o1"}),
        *[ev(i, user_id=None, anonymous_id=f"n{i}") for i in range(2, 40)],
        ev(40, user_id=None, anonymous_id="b", event="Order Completed", properties={"order_id": "o2"}),
        ev(41, user_id="u1", anonymous_id="a", kind="identify"),
        ev(42, user_id="u1", anonymous_id="b", kind="identify"),
    ]


def test_refold_reads_events_back_from_the_log(tmp_path: Path) -> None:
    storage = DuckDBStorage(tmp_path / "takt.duckdb")
    try:
        storage.log.append(events())
        from_log = storage.log.read(0)
        memory = Projector(CONFIG)
        memory.apply(from_log)
        # A tiny cache and window: the merge at the end must read the early events from the log.
        first = Projector(CONFIG, LogEvents(storage.log, cache_size=2))
        first.apply(from_log[:30])
        storage.snapshots.save("profiles", first.position, orjson.dumps(first.snapshot()))
        loaded = storage.snapshots.load("profiles")
        assert loaded is not None
        resumed = Projector.restore(orjson.loads(loaded[1]), CONFIG, LogEvents(storage.log, cache_size=2))
        resumed.apply(from_log[30:])
        assert resumed.snapshot() == memory.snapshot()
        u1 = resumed.profile_for("user_id:u1")
        assert u1 is not None and len(u1.events) == 4
    finally:
        storage.close()


def test_a_position_the_log_lacks_is_an_error(tmp_path: Path) -> None:
    storage = DuckDBStorage(tmp_path / "takt.duckdb")
    try:
        storage.log.append([ev(1)])
        lookup = LogEvents(storage.log)
        assert [s.event.message_id for s in lookup.get([1])] == ["m-1"]
        with pytest.raises(LookupError, match="positions"):
            lookup.get([1, 99])
        lookup.put(StoredEvent(99, ev(99)))
        assert [s.position for s in lookup.get([99, 1])] == [99, 1]
    finally:
        storage.close()

