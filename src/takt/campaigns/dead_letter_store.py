"""The dead-letter list in the workspace's storage (``storage.session()``: DuckDB and PostgreSQL alike).
Table ``delivery_dead_letters``, one row per message id."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from takt.campaigns.dead_letters import DeadLetter, DeadLetters
from takt.services import services_of
from takt.storage.base import Storage

DDL = """
CREATE TABLE IF NOT EXISTS delivery_dead_letters (
    message_id       VARCHAR PRIMARY KEY,
    campaign         VARCHAR NOT NULL,
    campaign_version INTEGER NOT NULL,
    step             VARCHAR NOT NULL,
    profile_id       VARCHAR NOT NULL,
    intent           VARCHAR NOT NULL,
    channel          VARCHAR NOT NULL,
    error            VARCHAR NOT NULL,
    attempts         INTEGER NOT NULL,
    failed_at        TIMESTAMPTZ NOT NULL,
    replayed_at      TIMESTAMPTZ,
    replay_status    VARCHAR
)
"""
SCHEMA_LOCK = 0x74616B74_000000D1  # "takt" · dead letters schema
_COLS = ("message_id, campaign, campaign_version, step, profile_id, intent, channel, error, attempts, failed_at, "
         "replayed_at, replay_status")


def _utc(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    return t.astimezone(UTC) if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _letter(row: Sequence[Any]) -> DeadLetter:
    failed_at = _utc(row[9])
    assert failed_at is not None
    return DeadLetter(str(row[0]), str(row[1]), int(row[2]), str(row[3]), str(row[4]), str(row[5]), str(row[6]),
                      str(row[7]), int(row[8]), failed_at, _utc(row[10]), row[11])


class SqlDeadLetters(DeadLetters):
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        with storage.session(transaction=True) as s:
            s.lock(SCHEMA_LOCK)
            s.script(DDL)

    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.storage.session() as s:
            return s.execute(sql, params)

    def add(self, letter: DeadLetter) -> None:
        self._q(f"INSERT INTO delivery_dead_letters ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL) "
                "ON CONFLICT (message_id) DO UPDATE SET error = excluded.error, "
                "attempts = delivery_dead_letters.attempts + excluded.attempts, failed_at = excluded.failed_at, "
                "replayed_at = NULL, replay_status = NULL",
                [letter.message_id, letter.campaign, letter.campaign_version, letter.step, letter.profile_id,
                 letter.intent, letter.channel, letter.error, letter.attempts, _utc(letter.failed_at)])

    def get(self, letter_id: str) -> DeadLetter | None:
        rows = self._q(f"SELECT {_COLS} FROM delivery_dead_letters WHERE message_id = ?", [letter_id])
        return _letter(rows[0]) if rows else None

    def page(self, limit: int = 100, after: str | None = None, channel: str | None = None,
             pending_only: bool = False) -> list[DeadLetter]:
        where, params = ["1 = 1"], []
        if after:
            where.append("message_id > ?")
            params.append(after)
        if channel:
            where.append("channel = ?")
            params.append(channel)
        if pending_only:
            where.append("(replay_status IS NULL OR replay_status <> 'sent')")
        rows = self._q(f"SELECT {_COLS} FROM delivery_dead_letters WHERE {' AND '.join(where)} "
                       "ORDER BY message_id LIMIT ?", [*params, int(limit)])
        return [_letter(r) for r in rows]

    def count(self, pending_only: bool = False) -> int:
        where = " WHERE replay_status IS NULL OR replay_status <> 'sent'" if pending_only else ""
        return int(self._q(f"SELECT count(*) FROM delivery_dead_letters{where}")[0][0])

    def mark_replayed(self, letter_id: str, at: datetime, status: str) -> None:
        self._q("UPDATE delivery_dead_letters SET replayed_at = ?, replay_status = ? WHERE message_id = ?",
                [_utc(at), status, letter_id])


def dead_letters(storage: Storage) -> SqlDeadLetters:
    """The storage's dead-letter list (its table is created on first use)."""
    return services_of(storage).store("campaigns.dead_letters", SqlDeadLetters)
