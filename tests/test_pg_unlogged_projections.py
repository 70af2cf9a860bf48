"""PostgreSQL keeps profile state in UNLOGGED tables (``takt.storage.pg_projection_tables``): after a crash the
server empties them. A ``TRUNCATE`` does the same here; the runner must notice and fold the log again, both when
it starts afresh and when it lived through the server's restart with part of the state in its cache."""

from __future__ import annotations

from datetime import timedelta

import psycopg

from takt.clock import FixedClock
from takt.projections.runner import ProfileRunner
from takt.storage import pg_projection_tables
from takt.storage.postgres import PostgresStorage
from tests.factories import T0
from tests.profiles.test_properties import CONFIG
from tests.profiles.test_store import _events

CLOCK = FixedClock(T0 + timedelta(days=30))
STORE = ("profile_states", "identity_clusters", "identity_members", "profile_store_meta", "projection_snapshots")


def _crash(url: str) -> None:
    """What crash recovery does to UNLOGGED tables: every row gone."""
    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f"TRUNCATE {', '.join(STORE)}")


def _reference(storage: PostgresStorage) -> dict[str, object]:
    straight = ProfileRunner(storage, CONFIG, CLOCK)
    straight.projector = straight._new(False)  # in memory only: the store is not touched
    straight.catch_up()
    return {pid: straight.profile_json(pid) for pid in straight.profile_ids()}


def test_projection_tables_are_unlogged_and_logged_ones_are_converted(pg_url: str) -> None:
    with PostgresStorage(pg_url) as storage:
        storage.log.append(_events(10))
        with psycopg.connect(pg_url, autocommit=True) as con:
            kinds = dict(con.execute("SELECT relname, relpersistence FROM pg_class WHERE relname = ANY(%s)",
                                     [list(STORE)]).fetchall())
            assert kinds == dict.fromkeys(STORE, "u")
            assert con.execute("SELECT relpersistence FROM pg_class WHERE relname = 'events'").fetchone() == ("p",)
            # a workspace of an earlier version: the tables were logged, their PII columns had statistics
            for t in STORE:
                con.execute(f"ALTER TABLE {t} SET LOGGED")
            con.execute("ALTER TABLE identity_members ALTER COLUMN identifier SET STATISTICS -1")
    with PostgresStorage(pg_url) as storage, psycopg.connect(pg_url, autocommit=True) as con:
        kinds = dict(con.execute("SELECT relname, relpersistence FROM pg_class WHERE relname = ANY(%s)",
                                 [list(STORE)]).fetchall())
        assert kinds == dict.fromkeys(STORE, "u")  # converted at open
        assert con.execute("SELECT attstattarget FROM pg_attribute WHERE attrelid = 'identity_members'::regclass "
                           "AND attname = 'identifier'").fetchone() == (0,)
        assert pg_projection_tables.ensure_unlogged(con) == []  # idempotent


def test_a_runner_starting_after_a_crash_folds_the_log_again(pg_url: str) -> None:
    with PostgresStorage(pg_url) as storage:
        storage.log.append(_events(120))
        first = ProfileRunner(storage, CONFIG, CLOCK, cache_size=5)
        first.load()
        first.catch_up(batch=40)
        first.save()
        want = _reference(storage)
        assert len(want) == 23 and storage.profiles.count() == 23
    _crash(pg_url)
    with PostgresStorage(pg_url) as storage:
        again = ProfileRunner(storage, CONFIG, CLOCK, cache_size=5)
        assert again.load() is False and again.position == 0  # nothing recorded: from the start of the log
        again.catch_up()
        again.save()
        assert {pid: again.profile_json(pid) for pid in again.profile_ids()} == want
        assert storage.profiles.count() == 23


def test_a_runner_that_lived_through_the_crash_folds_the_log_again(pg_url: str) -> None:
    with PostgresStorage(pg_url) as storage:
        storage.log.append(_events(120))
        runner = ProfileRunner(storage, CONFIG, CLOCK, cache_size=5)
        runner.load()
        runner.catch_up(batch=40)
        runner.save()
        assert runner.projector.cached() <= 5  # most states live only in the store
        _crash(pg_url)
        storage.log.append(_events(30, offset=120))
        runner.catch_up(batch=7)
        runner.save()
        want = _reference(storage)
        assert storage.profiles.count() == len(want) == 23
        assert storage.profiles.position() == runner.position == storage.log.head()
        assert {pid: runner.profile_json(pid) for pid in runner.profile_ids()} == want
        fresh = ProfileRunner(storage, CONFIG, CLOCK)
        assert fresh.load() is True
        assert {pid: fresh.profile_json(pid) for pid in fresh.profile_ids()} == want
