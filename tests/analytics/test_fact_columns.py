"""``profile_events`` carries what analytics reads — the touchpoint, source, received time and local hour of the
week of each event — and a workspace whose tables predate these columns has them built again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from takt.clock import FixedClock
from takt.events.model import Event
from takt.profiles.config import ProfileConfig
from takt.projections.runner import ProfileRunner
from takt.projections.tables import WorkspaceTables
from takt.storage.base import Storage
from tests.conftest import open_backend

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
MONDAY_9_UTC = datetime(2026, 11, 16, 9, tzinfo=UTC)


def _events() -> list[Event]:
    def ev(n: int, source: str, context: dict[str, object], at: datetime = MONDAY_9_UTC) -> Event:
        return Event(kind="track", event="Product Viewed", message_id=f"m{n}", source=source, timestamp=at,
                     received_at=at + timedelta(seconds=n), user_id="u1", context=context)

    return [ev(1, "website", {"channel": "mobile", "timezone": "Asia/Tokyo"}),  # 18:00 in Tokyo
            ev(2, "website", {"campaign": {"medium": "email"}}),
            ev(3, "pos", {}),
            ev(4, "website", {"library": {"name": "analytics.js"}, "timezone": "Not/AZone"})]


def _rows(storage: Storage) -> list[tuple[object, ...]]:
    with storage.session() as s:
        return s.execute("SELECT touchpoint, source, received_at, hour_of_week FROM profile_events ORDER BY position")


def _refresh(storage: Storage) -> None:
    runner = ProfileRunner(storage, ProfileConfig(source_channels={"pos": "store"}), FixedClock(NOW))
    runner.load()
    runner.catch_up()
    WorkspaceTables(storage, runner, computed=[]).refresh()


@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
def test_events_carry_touchpoint_source_received_time_and_local_hour(backend: str, tmp_path: Path,
                                                                     request: pytest.FixtureRequest) -> None:
    storage = open_backend(backend, tmp_path, request)
    try:
        storage.log.append(_events())
        _refresh(storage)
        rows = _rows(storage)
    finally:
        storage.close()
    assert [r[0] for r in rows] == ["app", "email", "store", "web"]
    assert [r[1] for r in rows] == ["website", "website", "pos", "website"]
    assert [r[2] for r in rows] == [MONDAY_9_UTC + timedelta(seconds=n) for n in (1, 2, 3, 4)]
    assert [r[3] for r in rows] == [18, 9, 9, 9]


@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
def test_tables_of_the_earlier_format_are_built_again(backend: str, tmp_path: Path,
                                                      request: pytest.FixtureRequest) -> None:
    storage = open_backend(backend, tmp_path, request)
    try:
        storage.log.append(_events())
        _refresh(storage)
        with storage.session(transaction=True) as s:  # the layout of format 1: no analytics columns
            for column in ("touchpoint", "source", "received_at", "hour_of_week"):
                s.execute(f"ALTER TABLE profile_events DROP COLUMN {column}")
            s.execute("UPDATE profile_store_meta SET format = 1 WHERE name = 'segment_tables'")
    finally:
        storage.close()
    again = open_backend(backend, tmp_path, request) if backend == "duckdb" else _reopen_pg(request)
    try:
        _refresh(again)
        rows = _rows(again)
    finally:
        again.close()
    assert [r[0] for r in rows] == ["app", "email", "store", "web"]
    assert [r[3] for r in rows] == [18, 9, 9, 9]


def _reopen_pg(request: pytest.FixtureRequest) -> Storage:
    from takt.storage.postgres import PostgresStorage

    return PostgresStorage(request.getfixturevalue("pg_url"))
