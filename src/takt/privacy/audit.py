"""The audit log: who read, exported or erased personal data, and when. Append-only.

One row per PII read (profile, profile lookup, timeline, consent history), export and erasure:
``(id, at, key_id, action, subject, outcome)``. ``subject`` is the profile id (pseudonymous), never an
identifier such as an email address: the audit log must survive an erasure without keeping what was erased.
The table lives in the workspace's database (``privacy_audit``), on both backends.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from takt.storage.base import Storage

ACTIONS = ("profile.read", "profile.lookup", "profile.timeline", "consent.read", "privacy.export", "privacy.erase")

DUCKDB_DDL = """
CREATE SEQUENCE IF NOT EXISTS privacy_audit_seq;
CREATE TABLE IF NOT EXISTS privacy_audit (
    id      BIGINT PRIMARY KEY DEFAULT nextval('privacy_audit_seq'),
    occurred_at TIMESTAMPTZ NOT NULL,
    key_id  VARCHAR NOT NULL,
    action  VARCHAR NOT NULL,
    subject VARCHAR,
    outcome VARCHAR NOT NULL
)
"""

POSTGRES_DDL = """
CREATE TABLE IF NOT EXISTS privacy_audit (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at TIMESTAMPTZ NOT NULL,
    key_id  TEXT NOT NULL,
    action  TEXT NOT NULL,
    subject TEXT,
    outcome TEXT NOT NULL
)
"""


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    key_id: str
    action: str
    subject: str | None
    outcome: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "at": self.at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                "key_id": self.key_id, "action": self.action, "subject": self.subject, "outcome": self.outcome}


class AuditLog:
    def __init__(self, storage: Storage):
        self.storage = storage
        self._lock = threading.Lock()
        self._pg = storage.backend == "postgres"
        if self._pg:
            self._run(POSTGRES_DDL, [])
        else:
            self._cur = storage.con.cursor()  # type: ignore[attr-defined]
            for stmt in DUCKDB_DDL.split(";"):
                self._run(stmt, [])

    def _run(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        if self._pg:
            with self.storage._pool.connection() as con:  # type: ignore[attr-defined]
                cur = con.execute(sql.replace("?", "%s"), params)
                return list(cur.fetchall()) if cur.description else []
        with self._lock:
            cur = self._cur.execute(sql, params)
            return list(cur.fetchall()) if cur.description else []

    def record(self, at: datetime, key_id: str, action: str, subject: str | None, outcome: str = "ok") -> None:
        if action not in ACTIONS:
            raise ValueError(f"unknown audit action {action!r}")
        self._run("INSERT INTO privacy_audit (occurred_at, key_id, action, subject, outcome) VALUES (?, ?, ?, ?, ?)",
                  [at, key_id, action, subject, outcome])

    def entries(self, limit: int = 100, before: int | None = None, action: str | None = None,
                subject: str | None = None) -> list[AuditEntry]:
        """Newest first; ``before`` is the id of the last entry of the previous page."""
        where: list[str] = ["TRUE"]
        params: list[Any] = []
        if before is not None:
            where.append("id < ?")
            params.append(before)
        if action is not None:
            where.append("action = ?")
            params.append(action)
        if subject is not None:
            where.append("subject = ?")
            params.append(subject)
        rows = self._run(f"SELECT id, occurred_at, key_id, action, subject, outcome FROM privacy_audit "
                         f"WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?", [*params, limit])
        return [AuditEntry(int(r[0]), r[1], str(r[2]), str(r[3]), r[4], str(r[5])) for r in rows]


_LOGS: weakref.WeakKeyDictionary[Storage, AuditLog] = weakref.WeakKeyDictionary()
_GUARD = threading.Lock()


def audit_log(storage: Storage) -> AuditLog:
    """The storage's audit log (its table is created on first use)."""
    with _GUARD:
        found = _LOGS.get(storage)
        if found is None:
            found = _LOGS[storage] = AuditLog(storage)
        return found


def record(storage: Storage, at: datetime, key_id: str, action: str, subject: str | None,
           outcome: str = "ok") -> None:
    audit_log(storage).record(at, key_id, action, subject, outcome)
