"""The group-commit writer: acknowledges only committed events, isolates a failing request, refuses overload."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from takt.errors import TaktError
from takt.events.model import Event
from takt.log.base import AppendResult
from takt.log.writer import GroupCommitWriter
from takt.storage.duckdb import DuckDBStorage
from tests.factories import ev


class FailingLog:
    """Wraps a real log; appends containing a poisoned messageId fail as a whole."""

    def __init__(self, inner):  # type: ignore[no-untyped-def]
        self.inner = inner

    def append(self, events: Sequence[Event]) -> AppendResult:
        if any(e.message_id == "poison" for e in events):
            raise RuntimeError("cannot store this")
        return self.inner.append(events)  # type: ignore[no-any-return]


def test_one_bad_request_fails_alone(tmp_path) -> None:
    storage = DuckDBStorage(tmp_path / "w.duckdb")
    writer = GroupCommitWriter(FailingLog(storage.log))  # type: ignore[arg-type]
    try:
        futures = [writer.enqueue([ev(i)]) for i in range(5)]
        bad = writer.enqueue([ev(99, message_id="poison")])
        futures += [writer.enqueue([ev(i)]) for i in range(5, 10)]
        for f in futures:
            assert f.result(10).stored >= 0
        with pytest.raises(TaktError) as e:
            bad.result(10)
        assert e.value.status == 503
        assert storage.log.count() == 10
    finally:
        writer.close()
        storage.close()


def test_overload_is_refused_with_retry_after(tmp_path) -> None:
    import threading

    storage = DuckDBStorage(tmp_path / "w.duckdb")
    gate = threading.Event()

    class SlowLog:
        def append(self, events: Sequence[Event]) -> AppendResult:
            gate.wait(10)
            return storage.log.append(events)

    writer = GroupCommitWriter(SlowLog(), max_queue_events=10)  # type: ignore[arg-type]
    try:
        first = writer.enqueue([ev(i) for i in range(5)])
        second = writer.enqueue([ev(i) for i in range(5, 10)])
        with pytest.raises(TaktError) as e:
            writer.enqueue([ev(i) for i in range(10, 20)])
        assert e.value.status == 429 and e.value.headers["Retry-After"] == "1"
        gate.set()
        first.result(10)
        second.result(10)
        assert storage.log.count() == 10
    finally:
        gate.set()
        writer.close()
        storage.close()
