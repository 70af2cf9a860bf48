"""Contract for what projections need from a backend: events by position, snapshots and the lease."""

from __future__ import annotations

from pathlib import Path

import pytest

from takt.storage.base import Storage
from tests.conftest import open_backend
from tests.factories import ev


def test_get_by_positions_in_the_order_asked(storage: Storage) -> None:
    storage.log.append([ev(i) for i in range(6)])
    rows = storage.log.read()
    wanted = [rows[4].position, rows[0].position, rows[2].position]
    got = storage.log.get(wanted)
    assert [g.position for g in got] == wanted
    assert [g.event.message_id for g in got] == ["m-4", "m-0", "m-2"]
    assert storage.log.get([]) == []
    with pytest.raises(KeyError):
        storage.log.get([rows[-1].position + 1000])


def test_snapshots_replace_and_delete(storage: Storage) -> None:
    assert storage.snapshots.load("p") is None
    storage.snapshots.save("p", 5, b"\x00one")
    storage.snapshots.save("p", 9, b"two")
    storage.snapshots.save("q", 1, b"other")
    assert storage.snapshots.load("p") == (9, b"two")
    storage.snapshots.delete("p")
    assert storage.snapshots.load("p") is None
    assert storage.snapshots.load("q") == (1, b"other")


@pytest.mark.parametrize("backend", ["postgres"])
def test_one_lease_holder_at_a_time_and_takeover(backend: str, tmp_path: Path,
                                                 request: pytest.FixtureRequest) -> None:
    a = open_backend(backend, tmp_path, request)
    url = a.url  # type: ignore[attr-defined]
    from takt.storage.postgres import PostgresStorage

    b = PostgresStorage(url)
    try:
        assert a.try_lease("projections") is True
        assert a.try_lease("projections") is True, "the holder keeps it"
        assert b.try_lease("projections") is False
        assert b.try_lease("other") is True, "leases are independent"
        a.close()  # the holder stops (or dies): its session ends and the lock with it
        assert b.try_lease("projections") is True
    finally:
        b.close()
        a.close()


def test_single_process_backend_always_holds_the_lease(tmp_path: Path) -> None:
    from takt.storage.duckdb import DuckDBStorage

    s = DuckDBStorage(tmp_path / "x.duckdb")
    try:
        assert s.try_lease("projections")
    finally:
        s.close()
