"""DuckDB storage: the embedded default, one file per workspace.

DuckDB locks its file against every other process (even read-only ones), so one process owns a workspace:
``takt serve`` while it runs. Within the process one writer appends (the group-commit writer batches
concurrent requests into one transaction); readers use their own cursors.
"""

from __future__ import annotations

import re
import threading
from array import array
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import accumulate
from pathlib import Path

import duckdb
import orjson
import pyarrow as pa

from takt.errors import WorkspaceLocked
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
from takt.log.base import AppendResult, EventLog, dedupe_batch
from takt.storage.base import SnapshotStore, Storage

EVENTS_DDL = """
CREATE TABLE IF NOT EXISTS events (
    position     BIGINT NOT NULL,
    source       VARCHAR NOT NULL,
    message_id   VARCHAR NOT NULL,
    kind         VARCHAR NOT NULL,
    event        VARCHAR,
    user_id      VARCHAR,
    anonymous_id VARCHAR,
    ts           TIMESTAMPTZ NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL,
    provenance   VARCHAR NOT NULL,
    payload      VARCHAR NOT NULL,
    UNIQUE (source, message_id)
)
"""

KEYS_DDL = """
CREATE TABLE IF NOT EXISTS api_keys (
    id          VARCHAR PRIMARY KEY,
    kind        VARCHAR NOT NULL,
    name        VARCHAR NOT NULL,
    source      VARCHAR,
    provenance  VARCHAR,
    key_hash    VARCHAR NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ
)
"""

_TS = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema([
    ("position", pa.int64()),
    ("source", pa.string()),
    ("message_id", pa.string()),
    ("kind", pa.string()),
    ("event", pa.string()),
    ("user_id", pa.string()),
    ("anonymous_id", pa.string()),
    ("ts", _TS),
    ("received_at", _TS),
    ("provenance", pa.string()),
    ("payload", pa.large_string()),
])

_LOCK_RE = re.compile(r"PID (\d+)")


def connect(path: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the workspace's DuckDB file, turning a lock held by another process into a clear error."""
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as e:
        msg = str(e)
        if "lock" not in msg.lower():
            raise
        m = _LOCK_RE.search(msg)
        who = f"process {m.group(1)}" if m else "another process"
        raise WorkspaceLocked(
            f"the workspace database {path} is held by {who} (DuckDB allows one process per file; "
            "usually a running `takt serve`). Stop that process, or use its HTTP API "
            "(`takt events count --api http://HOST:PORT --key ADMIN_KEY`)."
        ) from None


def events_to_arrow(events: Sequence[Event], first_position: int) -> pa.Table:
    n = len(events)
    source, message_id, kind, event, user_id, anonymous_id, provenance, payload = ([] for _ in range(8))
    ts: list[int] = []
    received: list[int] = []
    for ev in events:
        source.append(ev.source)
        message_id.append(ev.message_id)
        kind.append(ev.kind)
        event.append(ev.event)
        user_id.append(ev.user_id)
        anonymous_id.append(ev.anonymous_id)
        ts.append(_micros(ev.timestamp))
        received.append(_micros(ev.received_at))
        provenance.append(ev.provenance)
        payload.append(ev.to_json())
    columns = [
        pa.array(range(first_position, first_position + n), pa.int64()),
        pa.array(source, pa.string()),
        pa.array(message_id, pa.string()),
        pa.array(kind, pa.string()),
        pa.array(event, pa.string()),
        pa.array(user_id, pa.string()),
        pa.array(anonymous_id, pa.string()),
        pa.array(ts, pa.int64()).cast(_TS),
        pa.array(received, pa.int64()).cast(_TS),
        pa.array(provenance, pa.string()),
        _utf8_array(payload),
    ]
    return pa.Table.from_arrays(columns, schema=SCHEMA)


def _utf8_array(items: list[bytes]) -> pa.Array:
    """A string array from UTF-8 byte strings (orjson's output) without decoding each one in Python."""
    offsets = array("q", [0])
    offsets.extend(accumulate(map(len, items)))
    data = b"".join(items)
    return pa.Array.from_buffers(pa.large_string(), len(items), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(t: datetime) -> int:
    d = t - _EPOCH
    return (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds


class DuckDBEventLog(EventLog):
    backend = "duckdb"

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self._con = con
        self._write_lock = threading.Lock()
        with self._write_lock:
            con.execute(EVENTS_DDL)
            row = con.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()
            self._last = int(row[0]) if row else 0
        self._local = threading.local()

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cur = getattr(self._local, "cur", None)
        if cur is None:
            cur = self._con.cursor()
            self._local.cur = cur
        return cur

    def append(self, events: Sequence[Event]) -> AppendResult:
        batch = dedupe_batch(events)
        if not batch:
            return AppendResult(0, len(events), self._last)
        with self._write_lock:
            cur = self._cursor()
            table = events_to_arrow(batch, self._last + 1)
            cur.execute("BEGIN TRANSACTION")
            try:
                cur.register("_takt_batch", table)
                row = cur.execute(
                    "INSERT INTO events SELECT * FROM _takt_batch ON CONFLICT DO NOTHING"
                ).fetchone()
                cur.unregister("_takt_batch")
                cur.execute("COMMIT")
            except BaseException:
                try:
                    cur.execute("ROLLBACK")
                except duckdb.Error:
                    pass
                raise
            stored = int(row[0]) if row else 0
            self._last += len(batch)
            return AppendResult(stored, len(events) - stored, self._last)

    def read(self, after: int = 0, limit: int = 10_000) -> list[StoredEvent]:
        rows = self._cursor().execute(
            "SELECT position, payload FROM events WHERE position > ? ORDER BY position LIMIT ?",
            [after, limit],
        ).fetchall()
        return [StoredEvent(int(p), Event.from_record(orjson.loads(payload))) for p, payload in rows]

    def get(self, positions: Sequence[int]) -> list[StoredEvent]:
        if not positions:
            return []
        wanted = pa.table({"position": pa.array(list(positions), pa.int64())})
        cur = self._cursor()
        cur.register("_takt_wanted", wanted)
        try:
            rows = cur.execute(
                "SELECT e.position, e.payload FROM events e JOIN _takt_wanted w USING (position)"
            ).fetchall()
        finally:
            cur.unregister("_takt_wanted")
        by_pos = {int(p): payload for p, payload in rows}
        missing = [p for p in positions if p not in by_pos]
        if missing:
            raise KeyError(f"no events at positions {missing[:5]}")
        return [StoredEvent(p, Event.from_record(orjson.loads(by_pos[p]))) for p in positions]

    # fetchall, not fetchone: a half-read result would break the cursor's next statement on this thread
    def head(self) -> int:
        rows = self._cursor().execute("SELECT coalesce(max(position), 0) FROM events").fetchall()
        return int(rows[0][0])

    def count(self) -> int:
        rows = self._cursor().execute("SELECT count(*) FROM events").fetchall()
        return int(rows[0][0])

    def contains(self, source: str, message_id: str) -> bool:
        rows = self._cursor().execute(
            "SELECT 1 FROM events WHERE source = ? AND message_id = ? LIMIT 1", [source, message_id]
        ).fetchall()
        return bool(rows)




class DuckDBKeyStore(KeyStore):
    def __init__(self, con: duckdb.DuckDBPyConnection):
        self._con = con
        self._lock = threading.Lock()
        con.execute(KEYS_DDL)

    def create(self, kind: str, name: str, source: str | None = None, provenance: str | None = None,
               *, now: datetime) -> tuple[ApiKey, Secret]:
        source, provenance = check_key_request(kind, name, source, provenance)
        key_id, secret = new_key(kind)
        with self._lock:
            self._con.cursor().execute(
                "INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                [key_id, kind, name, source, provenance, hash_key(secret.reveal()), now],
            )
        return ApiKey(key_id, kind, name, source, provenance, now), secret

    def lookup(self, raw: str) -> ApiKey | None:
        row = self._con.cursor().execute(
            f"SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = ?", [hash_key(raw)]
        ).fetchone()
        return key_from_row(row) if row else None

    def list(self) -> list[ApiKey]:
        rows = self._con.cursor().execute(f"SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at, id").fetchall()
        return [key_from_row(r) for r in rows]

    def revoke(self, key_id_or_name: str, *, now: datetime) -> ApiKey:
        with self._lock:
            cur = self._con.cursor()
            rows = cur.execute(
                f"SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ? OR name = ?", [key_id_or_name, key_id_or_name]
            ).fetchall()
            key = key_to_revoke(rows, key_id_or_name)
            if key.revoked_at is None:
                cur.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", [now, key.id])
                key = ApiKey(key.id, key.kind, key.name, key.source, key.provenance, key.created_at, now)
            return key


SNAPSHOTS_DDL = """
CREATE TABLE IF NOT EXISTS projection_snapshots (
    name       VARCHAR PRIMARY KEY,
    position   BIGINT NOT NULL,
    data       BLOB NOT NULL
)
"""


class DuckDBSnapshotStore(SnapshotStore):
    def __init__(self, con: duckdb.DuckDBPyConnection):
        self._con = con
        con.execute(SNAPSHOTS_DDL)

    def load(self, name: str) -> tuple[int, bytes] | None:
        row = self._con.cursor().execute(
            "SELECT position, data FROM projection_snapshots WHERE name = ?", [name]
        ).fetchone()
        return (int(row[0]), bytes(row[1])) if row else None

    def save(self, name: str, position: int, data: bytes) -> None:
        cur = self._con.cursor()
        cur.execute("BEGIN TRANSACTION")
        try:
            cur.execute("DELETE FROM projection_snapshots WHERE name = ?", [name])
            cur.execute("INSERT INTO projection_snapshots VALUES (?, ?, ?)", [name, position, data])
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise

    def delete(self, name: str) -> None:
        self._con.cursor().execute("DELETE FROM projection_snapshots WHERE name = ?", [name])


class DuckDBStorage(Storage):
    backend = "duckdb"

    def __init__(self, path: Path | str, read_only: bool = False):
        self.path = Path(path)
        self.con = connect(self.path, read_only=read_only)
        self.log = DuckDBEventLog(self.con)
        self.keys = DuckDBKeyStore(self.con)
        self.snapshots = DuckDBSnapshotStore(self.con)

    def close(self) -> None:
        try:
            self.con.close()
        except duckdb.Error:
            pass
