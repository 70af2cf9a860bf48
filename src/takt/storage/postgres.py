"""PostgreSQL storage: the event log and key store in a PostgreSQL database, shared by several processes.

Same tables and columns as :mod:`takt.storage.duckdb` (``events``, ``api_keys``), same semantics, so the
contract suite in ``tests/contract`` runs unchanged against both. Unlike DuckDB, any number of processes
(several ``takt serve``, the CLI, a projector) may open the same database at once.

**Positions follow commit order.** ``events.position`` is an identity column, so PostgreSQL hands out the
numbers at insert time. Left alone, two concurrent appends can commit out of order: A takes 10, B takes 11,
B commits, a reader following the log sees 11 and moves its cursor there, then A commits 10 and the reader
never reads it. To rule that out every append takes one transaction-scoped lock before it inserts::

    BEGIN; SELECT pg_advisory_xact_lock(<takt append lock>); INSERT …; COMMIT

so appends run one after another from the moment they draw positions until they commit, and PostgreSQL
releases a transaction's locks only after its commit is visible. Hence every position a reader can see was
drawn after every smaller position had committed (or rolled back, leaving a gap): ``read(after=p)`` never
misses an event committed later, and :meth:`PostgresEventLog.head` (the highest visible position) is
always safe to read up to. Readers take no lock and are never blocked. Serialized appends also cannot
deadlock: without the lock, two batches carrying some of the same messageIds in different orders wait on
each other's unique-index entries and one of them is aborted (``tests/contract/test_concurrent_writers.py``
shows both failures when the lock is taken out).

Why an advisory lock rather than ``LOCK TABLE events IN EXCLUSIVE MODE`` (the eventsourcing library's
choice): both serialize appenders the same way, but the table lock also conflicts with the lock that
(auto)vacuum and ANALYZE take on ``events``. Under a steady write load autovacuum would then either stall
appends (it is cancelled only after ``deadlock_timeout``) or be cancelled over and over and never finish,
and an anti-wraparound vacuum, which is not cancelled, would block ingestion for its whole run. The advisory
lock serializes exactly the appenders and nothing else. Its cost is that only writers that take it are
ordered: anything that inserts into ``events`` must go through :meth:`PostgresEventLog.append`.

The price of the scheme is that appends do not overlap, so the commit (the WAL flush) is inside the
critical section: at most about one append per WAL flush for the whole database, however many processes
write (PostgreSQL cannot merge the flushes of commits that wait on each other). Appends should therefore
be large: each ``takt serve`` gathers concurrent requests into one append (group commit,
:mod:`takt.log.writer`), which keeps the number of serialized commits low.

Other choices:

* ``payload`` is ``TEXT`` holding the exact bytes of :meth:`Event.to_json`, as in DuckDB. ``JSONB`` would
  reorder keys, drop duplicate keys and refuse ``\\u0000`` inside strings, so the round trip would not be
  exact, and it would cost a parse on every insert;
* timestamps are ``timestamptz``; connections use ``TimeZone=UTC``, so values come back in UTC;
* idempotency is ``INSERT … ON CONFLICT (source, message_id) DO NOTHING`` after
  :func:`takt.log.base.dedupe_batch` (the first of in-batch duplicates wins). Positions drawn by skipped
  rows are gaps, as the contract allows;
* a batch is one ``INSERT … SELECT … FROM unnest(arrays) WITH ORDINALITY ORDER BY ord`` with positions in
  batch order. The arrays go as binary parameters (quoting text-format arrays of JSON costs several ms of
  client CPU per 100 events), and ``BEGIN``, the lock, the insert and ``COMMIT`` go in one pipelined round
  trip, so the lock is held only while the server inserts and flushes the commit;
* schema creation takes another advisory lock, so several processes starting on an empty database at once
  do not race on ``CREATE TABLE IF NOT EXISTS``; when both tables exist no DDL is run at all (a role without
  ``CREATE`` on the schema can open an existing workspace);
* connections come from a small thread-safe pool (autocommit, explicit transactions for writes), so the
  group-commit writer and concurrent readers do not wait on each other's queries. A connection that broke
  is dropped, and the next use opens a new one. If the connection breaks during ``COMMIT``, ``append``
  raises although the batch may be stored; retrying is safe because appends are idempotent;
* PostgreSQL ``TEXT`` cannot hold a NUL character (DuckDB's ``VARCHAR`` can). An event with one in an
  indexed column (``source``, ``message_id``, ``user_id``, …) is refused with ``invalid_event`` before the
  transaction starts; inside ``payload`` it is JSON-escaped and round-trips.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from takt.errors import invalid
from takt.events.model import Event, StoredEvent
from takt.keys import (
    KEY_COLUMNS,
    ApiKey,
    KeyStore,
    Secret,
    check_key_request,
    hash_key,
    key_from_row,
    key_to_revoke,
    new_key,
)
from takt.log.base import AppendResult, ErasureResult, EventLog, dedupe_batch
from takt.log.sealing import PreparedBatch, Sealer, redactions
from takt.privacy.crypto import MasterKey, default_master_key_path
from takt.profiles.sealed import SealedProfileStore
from takt.segments.budget import BudgetedQuery, QueryBudget
from takt.storage import pg_projection_tables, pg_session
from takt.storage.base import SnapshotStore, Storage
from takt.storage.pg_profiles import PostgresProfileStore
from takt.storage.session import SqlSession

EVENTS_DDL = """
CREATE TABLE IF NOT EXISTS events (
    position     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source       TEXT NOT NULL,
    message_id   TEXT NOT NULL,
    kind         TEXT NOT NULL,
    event        TEXT,
    user_id      TEXT,
    anonymous_id TEXT,
    ts           TIMESTAMPTZ NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL,
    provenance   TEXT NOT NULL,
    payload      TEXT NOT NULL,
    subject      TEXT,
    sealed       BYTEA,
    UNIQUE (source, message_id)
)
"""

# Personal data is sealed under per-subject keys (takt.privacy.crypto); the keys live here, wrapped. A workspace
# from before sealing gets the two columns added; its old events stay readable as they are.
PRIVACY_DDL = """
ALTER TABLE events ADD COLUMN IF NOT EXISTS subject TEXT;
ALTER TABLE events ADD COLUMN IF NOT EXISTS sealed BYTEA;
CREATE TABLE IF NOT EXISTS privacy_subject_keys (
    subject    TEXT PRIMARY KEY,
    key_id     TEXT NOT NULL,
    wrapped    BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
"""

KEYS_DDL = """
CREATE TABLE IF NOT EXISTS api_keys (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    source      TEXT,
    provenance  TEXT,
    key_hash    TEXT NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ,
    trust       TEXT
)
"""

# A workspace from before keys had a trust gets the column; its write keys keep their meaning (the company's).
KEYS_TRUST_DDL = """
ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS trust TEXT;
UPDATE api_keys SET trust = 'server' WHERE kind = 'write' AND trust IS NULL;
"""

# Advisory lock keys (64-bit, per database): arbitrary constants, spelled so they are recognisable in
# pg_locks (objid/classid) and unlikely to collide with another application's.
logger = logging.getLogger(__name__)
APPEND_LOCK = 0x74616B74_00000001  # "takt" · 1
LOG_CHANNEL = "takt_log"
"""Every append notifies this channel in its transaction (delivered at commit): ``takt worker`` waits on it
(:meth:`PostgresStorage.wait_for_appends`) instead of polling the log."""
SCHEMA_LOCK = 0x74616B74_00000002  # "takt" · 2

_COLUMNS = ("source", "message_id", "kind", "event", "user_id", "anonymous_id", "ts", "received_at",
            "provenance", "payload", "subject", "sealed")
_TYPES = ("text", "text", "text", "text", "text", "text", "timestamptz", "timestamptz", "text", "text", "text",
          "bytea")

# The batch is stored only if every key it was sealed with is the one in the table (another process may have
# created a subject's key first, or erased it): otherwise nothing is inserted, ``keys_ok`` is false and the
# append re-seals with the table's keys.
INSERT_SQL = f"""
WITH chk AS (
    SELECT count(*) = %b AS ok FROM privacy_subject_keys k
    JOIN unnest(%b::text[], %b::text[]) AS u(subject, key_id) ON k.subject = u.subject AND k.key_id = u.key_id
), ins AS (
    INSERT INTO events ({", ".join(_COLUMNS)})
    SELECT {", ".join(_COLUMNS)}
    FROM unnest({", ".join(f"%b::{t}[]" for t in _TYPES)}) WITH ORDINALITY
         AS b({", ".join(_COLUMNS)}, ord)
    WHERE (SELECT ok FROM chk)
    ORDER BY ord
    ON CONFLICT (source, message_id) DO NOTHING
    RETURNING position
)
SELECT count(*), coalesce(max(position), (SELECT coalesce(max(position), 0) FROM events)), (SELECT ok FROM chk)
FROM ins
"""

INSERT_KEYS_SQL = """
INSERT INTO privacy_subject_keys (subject, key_id, wrapped)
SELECT * FROM unnest(%b::text[], %b::text[], %b::bytea[]) ON CONFLICT (subject) DO NOTHING
"""

# Pipeline mode needs libpq 14 or later (the psycopg[binary] wheels bundle one); older ones send statement by statement.
_PIPELINE = psycopg.Pipeline.is_supported()

# Columns that PostgreSQL's TEXT cannot hold a NUL character in (the payload is JSON, where it is escaped).
_TEXT_FIELDS = ("source", "message_id", "kind", "event", "user_id", "anonymous_id", "provenance")


def _batch_columns(events: Sequence[Event], prepared: PreparedBatch) -> list[list[Any]]:
    """The batch as one list per column, serializing every event first (so a bad event fails the append
    before the transaction starts)."""
    cols: list[list[Any]] = [[] for _ in _COLUMNS]
    (source, message_id, kind, event, user_id, anonymous_id, ts, received, provenance, payload, subject,
     sealed) = cols
    for i, ev in enumerate(events):
        for name in _TEXT_FIELDS:
            value = getattr(ev, name)
            if isinstance(value, str) and "\x00" in value:
                raise invalid(f"event {i} ({ev.message_id!r}): {name} contains a NUL character",
                              "invalid_event", [{"index": i, "field": name, "reason": "contains NUL"}])
        plain = prepared.subject[i] is None
        source.append(ev.source)
        message_id.append(ev.message_id)
        kind.append(ev.kind)
        event.append(ev.event)
        user_id.append(ev.user_id if plain else None)
        anonymous_id.append(ev.anonymous_id if plain else None)
        ts.append(ev.timestamp)
        received.append(ev.received_at)
        provenance.append(ev.provenance)
        payload.append(prepared.payload[i].decode())
        subject.append(prepared.subject[i])
        sealed.append(prepared.sealed[i])
    return cols


class ConnectionPool:
    """A small thread-safe pool: connections opened on demand up to ``max_size``, reused LIFO."""

    def __init__(self, url: str, max_size: int = 8, timeout: float = 30.0):
        self.url = url
        self.max_size = max_size
        self.timeout = timeout
        self._idle: list[psycopg.Connection[Any]] = []
        self._size = 0
        self._closed = False
        self._cv = threading.Condition()

    def _open(self) -> psycopg.Connection[Any]:
        kwargs: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in self.url:
            kwargs["connect_timeout"] = 10
        con = psycopg.connect(self.url, **kwargs)
        try:
            con.execute("SET TIME ZONE 'UTC'")
        except BaseException:
            con.close()
            raise
        return con

    def _get(self) -> psycopg.Connection[Any]:
        with self._cv:
            while True:
                if self._closed:
                    raise psycopg.OperationalError("the PostgreSQL storage is closed")
                if self._idle:
                    return self._idle.pop()
                if self._size < self.max_size:
                    self._size += 1
                    break
                if not self._cv.wait(self.timeout):
                    raise psycopg.OperationalError(
                        f"no PostgreSQL connection free after {self.timeout:g}s ({self.max_size} in use)")
        try:
            return self._open()
        except BaseException:
            with self._cv:
                self._size -= 1
                self._cv.notify()
            raise

    def _put(self, con: psycopg.Connection[Any]) -> None:
        keep = not con.closed and not con.broken and not self._closed
        if keep and con.info.transaction_status != TransactionStatus.IDLE:
            try:
                con.rollback()
            except psycopg.Error:
                keep = False
            keep = keep and con.info.transaction_status == TransactionStatus.IDLE
        with self._cv:
            if keep and not self._closed:
                self._idle.append(con)
            else:
                self._size -= 1
                con.close()
            self._cv.notify()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        con = self._get()
        try:
            yield con
        finally:
            self._put(con)

    def close(self) -> None:
        with self._cv:
            self._closed = True
            idle, self._idle = self._idle, []
            self._size -= len(idle)
            self._cv.notify_all()
        for con in idle:
            con.close()


def ensure_schema(pool: ConnectionPool) -> None:
    """Create the tables if missing; safe when several processes start at once."""
    with pool.connection() as con:
        row = con.execute("SELECT to_regclass('events') IS NOT NULL AND to_regclass('api_keys') IS NOT NULL "
                          "AND to_regclass('privacy_subject_keys') IS NOT NULL AND EXISTS (SELECT 1 FROM "
                          "information_schema.columns WHERE table_schema = current_schema() "
                          "AND table_name = 'api_keys' AND column_name = 'trust')").fetchone()
        if row and row[0]:
            return
        with con.transaction():
            con.execute("SELECT pg_advisory_xact_lock(%s)", [SCHEMA_LOCK])
            con.execute(EVENTS_DDL)
            con.execute(KEYS_DDL)
            con.execute(PRIVACY_DDL)
            con.execute(KEYS_TRUST_DDL)


class PostgresEventLog(EventLog):
    backend = "postgres"

    def __init__(self, pool: ConnectionPool, master: MasterKey):
        self._pool = pool
        self.sealer = Sealer(master, self._fetch_keys)
        self.before_commit: Callable[[Sequence[Event]], None] | None = None
        """Test hook: called inside the append transaction, after the insert and before the commit (with the
        append lock held). Raising from it aborts the append."""

    def _lock_appends(self, con: psycopg.Connection[Any]) -> None:
        """Serialize appends until this transaction ends (see the module docstring)."""
        con.execute("SELECT pg_advisory_xact_lock(%s)", [APPEND_LOCK])

    def _fetch_keys(self, subject_ids: list[str]) -> dict[str, tuple[str, bytes]]:
        with self._pool.connection() as con:
            rows = con.execute("SELECT subject, key_id, wrapped FROM privacy_subject_keys WHERE subject = ANY(%s)",
                               [subject_ids]).fetchall()
        return {str(s): (str(k), bytes(w)) for s, k, w in rows}

    def append(self, events: Sequence[Event]) -> AppendResult:
        batch = dedupe_batch(events)
        if not batch:
            return AppendResult(0, len(events), self.head())
        for _ in range(5):
            prepared = self.sealer.prepare(batch)
            try:
                result = self._append(batch, prepared)
            except BaseException:
                self.sealer.forget(k[0] for k in prepared.new_keys)
                raise
            if result is not None:
                stored, last = result
                return AppendResult(stored, len(events) - stored, last)
            # a key this process had cached is not the table's (created or erased by another process): re-read
            self.sealer.forget(prepared.used)
        raise RuntimeError("the subject keys of this batch kept changing under the append")

    def _append(self, batch: Sequence[Event], prepared: PreparedBatch) -> tuple[int, int] | None:
        params = _batch_columns(batch, prepared)
        used = list(prepared.used.items())
        check = [len(used), [u[0] for u in used], [u[1] for u in used]]
        new_keys = [[k[0] for k in prepared.new_keys], [k[1] for k in prepared.new_keys],
                    [k[2] for k in prepared.new_keys]]
        with self._pool.connection() as con:
            if prepared.new_keys:
                # committed on their own, before the append takes the lock: a key row with no event yet is
                # harmless, and concurrent appends never wait on each other's key rows
                con.execute(INSERT_KEYS_SQL, new_keys)
            # pipeline mode: BEGIN, the lock, the INSERT and the COMMIT go in one round trip, so the lock is
            # held for the insert and the commit's WAL flush only, not for client round trips
            with con.pipeline() if _PIPELINE else nullcontext() as pipeline, con.transaction():
                self._lock_appends(con)
                cur = con.execute(INSERT_SQL, check + params)
                con.execute("SELECT pg_notify(%s, '')", [LOG_CHANNEL])  # the worker wakes at commit
                if self.before_commit is not None:
                    if pipeline is not None:
                        pipeline.sync()
                    self.before_commit(batch)
            row = cur.fetchone()
        assert row is not None
        if not row[2]:
            return None
        return int(row[0]), int(row[1])

    def read(self, after: int = 0, limit: int = 10_000) -> list[StoredEvent]:
        with self._pool.connection() as con:
            rows = con.execute(
                "SELECT position, payload, subject, sealed FROM events WHERE position > %s ORDER BY position LIMIT %s",
                [after, limit],
            ).fetchall()
        return self.sealer.open(rows)

    def read_matching(self, after: int, upto: int, kinds: Sequence[str] = (), events: Sequence[str] = ()
                      ) -> list[StoredEvent]:
        with self._pool.connection() as con:
            rows = con.execute(
                "SELECT position, payload, subject, sealed FROM events WHERE position > %s AND position <= %s "
                "AND (kind = ANY(%s) OR event = ANY(%s)) ORDER BY position",
                [after, upto, list(kinds), list(events)],
            ).fetchall()
        return self.sealer.open(rows)

    def get(self, positions: Sequence[int]) -> list[StoredEvent]:
        if not positions:
            return []
        with self._pool.connection() as con:
            rows = con.execute("SELECT position, payload, subject, sealed FROM events WHERE position = ANY(%s)",
                               [list(positions)]).fetchall()
        by_pos = {se.position: se for se in self.sealer.open(rows)}
        missing = [p for p in positions if p not in by_pos]
        if missing:
            raise KeyError(f"no events at positions {missing[:5]}")
        return [by_pos[p] for p in positions]

    def mentioning(self, texts: Sequence[str]) -> list[int]:
        found: set[int] = set()
        with self._pool.connection() as con:
            for text in texts:
                found.update(int(r[0]) for r in con.execute(
                    "SELECT position FROM events WHERE sealed IS NULL AND strpos(payload, %s) > 0", [text]).fetchall())
        return sorted(found)

    def erase(self, positions: Sequence[int], identifiers: Sequence[str] = ()) -> ErasureResult:
        wanted = sorted(set(positions))
        subjects: list[str] = []
        try:
            with self._pool.connection() as con, con.transaction():
                self._lock_appends(con)  # no append seals with a key while it is being destroyed
                subjects = sorted({str(r[0]) for r in con.execute(
                    "SELECT DISTINCT subject FROM events WHERE position = ANY(%s) AND subject IS NOT NULL",
                    [wanted]).fetchall()} | {self.sealer.master.subject_id(i) for i in identifiers})
                rows = con.execute(
                    "SELECT position, payload, subject, sealed, user_id, anonymous_id FROM events "
                    "WHERE position = ANY(%s) OR subject = ANY(%s)", [wanted, subjects]).fetchall()
                cur = con.execute("DELETE FROM privacy_subject_keys WHERE subject = ANY(%s)", [subjects])
                keys = cur.rowcount
                pos, payloads = redactions(rows)
                if pos:
                    con.execute(
                        "UPDATE events e SET payload = r.payload, subject = NULL, sealed = NULL, user_id = NULL, "
                        "anonymous_id = NULL FROM unnest(%s::bigint[], %s::text[]) AS r(position, payload) "
                        "WHERE e.position = r.position", [pos, payloads])
        finally:
            self.sealer.forget(subjects)
        return ErasureResult(len(pos), max(keys, 0))

    def head(self) -> int:
        with self._pool.connection() as con:
            row = con.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()
        return int(row[0]) if row else 0

    def count(self) -> int:
        with self._pool.connection() as con:
            row = con.execute("SELECT count(*) FROM events").fetchone()
        return int(row[0]) if row else 0

    def count_by_kind(self) -> dict[str, int]:
        with self._pool.connection() as con:
            rows = con.execute("SELECT kind, count(*) FROM events GROUP BY kind").fetchall()
        return {str(k): int(n) for k, n in rows}

    def contains(self, source: str, message_id: str) -> bool:
        with self._pool.connection() as con:
            row = con.execute(
                "SELECT 1 FROM events WHERE source = %s AND message_id = %s LIMIT 1", [source, message_id]
            ).fetchone()
        return row is not None




class PostgresKeyStore(KeyStore):
    def __init__(self, pool: ConnectionPool):
        self._pool = pool

    def create(self, kind: str, name: str, source: str | None = None, provenance: str | None = None,
               *, now: datetime, trust: str | None = None) -> tuple[ApiKey, Secret]:
        req = check_key_request(kind, name, source, provenance, trust)
        key_id, secret = new_key(kind)
        with self._pool.connection() as con:
            con.execute(
                "INSERT INTO api_keys (id, kind, name, source, provenance, key_hash, created_at, trust) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                [key_id, kind, name, req.source, req.provenance, hash_key(secret.reveal()), now, req.trust],
            )
        return ApiKey(key_id, kind, name, req.source, req.provenance, now, trust=req.trust), secret

    def lookup(self, raw: str) -> ApiKey | None:
        with self._pool.connection() as con:
            row = con.execute(f"SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = %s", [hash_key(raw)]
                              ).fetchone()
        return key_from_row(row) if row else None

    def list(self) -> list[ApiKey]:
        with self._pool.connection() as con:
            rows = con.execute(f"SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at, id").fetchall()
        return [key_from_row(r) for r in rows]

    def revoke(self, key_id_or_name: str, *, now: datetime) -> ApiKey:
        with self._pool.connection() as con, con.transaction():
            rows = con.execute(
                f"SELECT {KEY_COLUMNS} FROM api_keys WHERE id = %s OR name = %s FOR UPDATE",
                [key_id_or_name, key_id_or_name],
            ).fetchall()
            key = key_to_revoke(rows, key_id_or_name)
            if key.revoked_at is None:
                con.execute("UPDATE api_keys SET revoked_at = %s WHERE id = %s", [now, key.id])
                key = dataclasses.replace(key, revoked_at=now)
            return key


SNAPSHOTS_DDL = """
CREATE TABLE IF NOT EXISTS projection_snapshots (
    name     text PRIMARY KEY,
    position bigint NOT NULL,
    data     bytea NOT NULL
)
"""

LEASE_LOCK_BASE = 0x74616B74_00010000  # "takt" · leases


class PostgresSnapshotStore(SnapshotStore):
    def __init__(self, pool: ConnectionPool):
        self._pool = pool
        with pool.connection() as con, con.transaction():
            con.execute("SELECT pg_advisory_xact_lock(%s)", [SCHEMA_LOCK])
            pg_projection_tables.create(con, SNAPSHOTS_DDL)  # UNLOGGED: plaintext profile state

    def load(self, name: str) -> tuple[int, bytes] | None:
        with self._pool.connection() as con:
            row = con.execute("SELECT position, data FROM projection_snapshots WHERE name = %s", [name]).fetchone()
        return (int(row[0]), bytes(row[1])) if row else None

    def save(self, name: str, position: int, data: bytes) -> None:
        with self._pool.connection() as con, con.transaction():
            con.execute(
                "INSERT INTO projection_snapshots (name, position, data) VALUES (%s, %s, %s) "
                "ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, data = EXCLUDED.data",
                [name, position, data],
            )

    def delete(self, name: str) -> None:
        with self._pool.connection() as con, con.transaction():
            con.execute("DELETE FROM projection_snapshots WHERE name = %s", [name])


def _lease_key(name: str) -> int:
    return LEASE_LOCK_BASE + (int.from_bytes(hashlib.sha256(name.encode()).digest()[:2], "big"))


class PostgresStorage(Storage):
    backend = "postgres"

    def __init__(self, url: str, pool_size: int = 8, master_key: MasterKey | None = None):
        self.url = url
        self.anchor = url
        master = master_key or MasterKey.load_or_create(default_master_key_path(url))
        self._pool = ConnectionPool(url, max_size=pool_size)
        try:
            ensure_schema(self._pool)
        except BaseException:
            self._pool.close()
            raise
        self.log = PostgresEventLog(self._pool, master)
        self.keys = PostgresKeyStore(self._pool)
        self.snapshots = PostgresSnapshotStore(self._pool)
        self.profiles = SealedProfileStore(PostgresProfileStore(self._pool), self.log.sealer)
        self._leases: dict[str, psycopg.Connection[Any]] = {}
        self._lease_lock = threading.Lock()
        self._listener: psycopg.Connection[Any] | None = None
        self._temp_limit_allowed: bool | None = None

    def session(self, transaction: bool = False) -> AbstractContextManager[SqlSession]:
        return pg_session.session(self._pool, transaction)

    def reclaim(self) -> None:
        from takt.storage.pg_projection_tables import vacuum_projection_tables

        with self._pool.connection() as con:
            vacuum_projection_tables(con)

    def has_table(self, name: str) -> bool:
        with self._pool.connection() as con:
            row = con.execute("SELECT to_regclass(%s) IS NOT NULL", [name]).fetchone()
        return bool(row and row[0])

    def budgeted_query(self, budget: QueryBudget) -> BudgetedQuery:
        from takt.storage.pg_budget import PostgresBudgetedQuery, may_set_temp_file_limit

        if self._temp_limit_allowed is None:
            self._temp_limit_allowed = may_set_temp_file_limit(self._pool)
        return PostgresBudgetedQuery(self._pool, budget, self._temp_limit_allowed)

    def try_lease(self, name: str) -> bool:
        """A session advisory lock on a connection of its own: held until released, closed, or this process
        dies (PostgreSQL then drops the session and the lock), when another process can take it."""
        with self._lease_lock:
            con = self._leases.get(name)
            if con is not None:
                if not con.closed:
                    return True
                del self._leases[name]
            con = psycopg.connect(self.url, autocommit=True)
            row = con.execute("SELECT pg_try_advisory_lock(%s)", [_lease_key(name)]).fetchone()
            if row and row[0]:
                self._leases[name] = con
                return True
            con.close()
            return False

    def lease_held_elsewhere(self, name: str) -> bool:
        """A granted advisory lock on the lease's key in this database, by a session that is not one of this
        process's lease connections (``pg_locks`` splits a bigint key into ``classid``/``objid``)."""
        with self._lease_lock:
            own = [c.info.backend_pid for c in self._leases.values() if not c.closed]
        key = _lease_key(name)
        with self._pool.connection() as con:
            row = con.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND d.datname = current_database() "
                "AND l.classid::bigint = %s AND l.objid::bigint = %s AND NOT l.pid = ANY(%s))",
                [key >> 32, key & 0xFFFFFFFF, own]).fetchone()
        return bool(row and row[0])

    def wait_for_appends(self, timeout: float) -> bool:
        """Wait until an append commits (``LISTEN`` on a connection of its own; notifications that arrived
        since the last call count) or ``timeout`` passes."""
        try:
            con = self._listener
            if con is None or con.closed:
                con = self._listener = psycopg.connect(self.url, autocommit=True)
                con.execute(f"LISTEN {LOG_CHANNEL}")  # a constant of ours
            for _ in con.notifies(timeout=timeout, stop_after=1):
                pass
        except psycopg.Error:
            logger.warning("waiting for appends failed; polling instead", exc_info=True)
            if self._listener is not None:
                self._listener.close()
            self._listener = None
            time.sleep(min(timeout, 1.0))
        return True

    def release_lease(self, name: str) -> None:
        with self._lease_lock:
            con = self._leases.pop(name, None)
        if con is not None:
            try:  # unlock before closing: the server ends a closed session later, and another process asking
                # for the lease right after this returns must get it
                if not con.closed:
                    con.execute("SELECT pg_advisory_unlock_all()")
            except psycopg.Error:
                logger.warning("releasing the lease %s failed; it ends with the session", name, exc_info=True)
            finally:
                con.close()

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        for name in list(self._leases):
            self.release_lease(name)
        self._pool.close()
