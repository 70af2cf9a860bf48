"""The sealed event log: part of the log contract, on every backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from takt.privacy.crypto import ERASED_MARK, MasterKey, is_erased
from takt.storage.base import Storage
from takt.storage.duckdb import DuckDBStorage
from tests.factories import ev

SECRET = "ann.secret@example.com"


def _raw_rows(storage: Storage) -> list[tuple[Any, ...]]:
    sql = "SELECT position, user_id, anonymous_id, payload, subject, sealed FROM events ORDER BY position"
    if isinstance(storage, DuckDBStorage):
        return storage.con.cursor().execute(sql).fetchall()
    with storage._pool.connection() as con:  # type: ignore[attr-defined]
        return con.execute(sql).fetchall()


def test_append_then_read_returns_plaintext_while_rows_hold_no_personal_data(storage: Storage) -> None:
    events = [ev(i, user_id="ann", traits={"email": SECRET}, properties={"phone": "+4915111111111", "n": i},
                 context={"ip": "10.1.2.3"}) for i in range(3)]
    events.append(ev(9, user_id=None, anonymous_id="anon-7", properties={"q": SECRET}))
    storage.log.append(events)
    assert [r.event for r in storage.log.read()] == events
    assert [r.event for r in storage.log.get([r.position for r in storage.log.read()])] == events
    for _, user_id, anonymous_id, payload, subject, sealed in _raw_rows(storage):
        assert user_id is None and anonymous_id is None
        assert SECRET not in payload and "ann" not in payload and "+4915111111111" not in payload
        assert subject is not None and SECRET.encode() not in bytes(sealed)
        assert "ann" not in subject  # a keyed hash, not the identifier


def test_after_erase_the_subjects_events_read_as_tombstones(storage: Storage) -> None:
    storage.log.append([ev(i, user_id="ann", traits={"email": SECRET}) for i in range(3)]
                       + [ev(10 + i, user_id="bob", properties={"n": i}) for i in range(2)])
    rows = storage.log.read()
    result = storage.log.erase([rows[0].position])
    assert result.keys == 1 and result.events == 3
    after = storage.log.read()
    assert [r.position for r in after] == [r.position for r in rows]  # positions and keys stay
    for r in after[:3]:
        assert is_erased(r.event) and r.event.context == {ERASED_MARK: True}
        assert r.event.user_id is None and r.event.traits == {} and r.event.message_id == f"m-{r.position - rows[0].position}"
    assert [r.event for r in after[3:]] == [r.event for r in rows[3:]]  # bob untouched
    assert all(SECRET not in str(row) for row in _raw_rows(storage))
    # idempotent: erasing again finds nothing left to erase
    again = storage.log.erase([rows[0].position])
    assert (again.events, again.keys) == (0, 0)


def test_re_ingesting_an_erased_message_id_stays_erased(storage: Storage) -> None:
    first = ev(1, user_id="ann", traits={"email": SECRET})
    storage.log.append([first])
    storage.log.erase([storage.log.read()[0].position])
    result = storage.log.append([first])  # a client retrying the same message
    assert result.stored == 0 and result.duplicates == 1
    assert storage.log.count() == 1 and is_erased(storage.log.read()[0].event)
    # a new message for the same person is new data under a new key, readable
    storage.log.append([ev(2, user_id="ann", traits={"email": "new@example.com"})])
    assert storage.log.read()[1].event.traits == {"email": "new@example.com"}
    assert is_erased(storage.log.read()[0].event)


def test_events_without_personal_data_stay_unsealed(storage: Storage) -> None:
    bare = ev(1, user_id=None, anonymous_id=None, event="Tick")
    storage.log.append([bare])
    (row,) = _raw_rows(storage)
    assert row[4] is None and row[5] is None
    assert storage.log.read()[0].event == bare


def test_a_wrong_master_key_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "t.duckdb"
    with DuckDBStorage(path) as s:
        s.log.append([ev(1, traits={"email": SECRET})])
    other = MasterKey(b"\x01" * 32)
    with DuckDBStorage(path, master_key=other) as s:
        try:
            s.log.read()
        except Exception as e:
            assert "master key" in str(e)
        else:
            raise AssertionError("reading with another master key must fail")


def test_old_unsealed_rows_stay_readable_and_erasable(tmp_path: Path) -> None:
    """A workspace written before sealing: rows with plaintext payload and identifier columns."""
    import duckdb

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("""CREATE TABLE events (position BIGINT NOT NULL, source VARCHAR NOT NULL, message_id VARCHAR NOT NULL,
        kind VARCHAR NOT NULL, event VARCHAR, user_id VARCHAR, anonymous_id VARCHAR, ts TIMESTAMPTZ NOT NULL,
        received_at TIMESTAMPTZ NOT NULL, provenance VARCHAR NOT NULL, payload VARCHAR NOT NULL,
        UNIQUE (source, message_id))""")
    old = ev(1, user_id="ann", traits={"email": SECRET})
    con.execute("INSERT INTO events VALUES (1, 'web', 'm-1', 'track', 'Product Viewed', 'ann', NULL, ?, ?, 'observed', ?)",
                [old.timestamp, old.received_at, old.to_json().decode()])
    con.close()
    with DuckDBStorage(path) as s:
        assert s.log.read()[0].event == old
        assert s.log.erase([1]).events == 1
        assert is_erased(s.log.read()[0].event)
        assert all(SECRET not in str(r) and "ann" not in str(r[1]) for r in _raw_rows(s))


def test_every_event_gets_its_own_nonce_and_every_subject_its_own_key() -> None:
    from takt.log.sealing import Sealer

    sealer = Sealer(MasterKey(b"\x02" * 32), lambda ids: {})
    same = [ev(i, user_id="ann", properties={"x": 1}) for i in range(200)] + [ev(500, user_id="bob")]
    batch = sealer.prepare(same)
    nonces = {bytes(s[:12]) for s in batch.sealed if s is not None}
    assert len(nonces) == len(same)
    assert len(batch.new_keys) == 2 and batch.new_keys[0][2] != batch.new_keys[1][2]
    assert len({k[1] for k in batch.new_keys}) == 2  # key ids differ
    again = sealer.prepare(same[:1])  # the cached key is reused, with a fresh nonce
    assert again.new_keys == [] and bytes(again.sealed[0][:12]) not in nonces  # type: ignore[index]


def test_postgres_a_process_with_a_stale_key_reseals_after_another_erased_it(pg_url: str) -> None:
    """Two processes on one database: B has the person's key cached when A erases the person. B's next event
    for that person must not be sealed under the destroyed key (it would be unreadable, or resurrect the key):
    the append sees that the key is no longer the table's and reseals under a new one."""
    from takt.storage.postgres import PostgresStorage

    master = MasterKey(b"\x03" * 32)
    with PostgresStorage(pg_url, master_key=master) as a, PostgresStorage(pg_url, master_key=master) as b:
        a.log.append([ev(1, user_id="ann", traits={"email": SECRET})])
        assert b.log.read()[0].event.traits == {"email": SECRET}  # B now holds ann's key in its cache
        a.log.erase([a.log.read()[0].position])
        b.log.append([ev(2, user_id="ann", traits={"email": "after@example.com"})])
        events = a.log.read()
        assert is_erased(events[0].event)
        assert events[1].event.traits == {"email": "after@example.com"}  # readable by A: a new key, stored
        assert b.log.read()[1].event.traits == {"email": "after@example.com"}


def test_a_retried_batch_with_new_people_stores_their_keys_once_and_reads_back(storage: Storage) -> None:
    """A client retries a batch that was stored, with new events of people never seen: the stored events are
    skipped, the new ones are stored sealed under keys that are in the table (readable after a restart of the
    key cache), and no key is stored twice."""
    first = [ev(i, user_id=f"old-{i}", traits={"email": f"old-{i}@example.com"}) for i in range(3)]
    storage.log.append(first)
    new = [ev(10 + i, user_id=f"new-{i}", traits={"email": f"new-{i}@example.com"}) for i in range(3)]
    result = storage.log.append([*first, *new])
    assert result.stored == 3 and result.duplicates == 3
    storage.log.sealer.cache.clear()  # type: ignore[attr-defined]  # as after a restart: keys from the table
    assert [r.event for r in storage.log.read()] == [*first, *new]
    again = storage.log.append([*new, ev(20, user_id="new-0", traits={"email": "again@example.com"})])
    assert again.stored == 1 and again.duplicates == 3
    subjects = [r[4] for r in _raw_rows(storage)]
    assert len(set(subjects)) == 6  # one key per person, the retried batch added none twice
    assert storage.log.read()[-1].event.traits == {"email": "again@example.com"}
