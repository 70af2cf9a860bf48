"""The audit log's path for request handlers (``AuditLog.arecord``): an awaited entry is committed when the await
returns — in a group with the entries queued meanwhile, by the committer thread, not a worker thread per request —
a failed write fails the awaiting read with ``audit_unavailable``, large groups (Arrow insert on DuckDB) store
exactly what was given, and an answered decision's entry survives the server being killed right after."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest

from takt.errors import TaktError
from takt.privacy import audit
from takt.privacy.audit import AuditLog, arecord, audit_log
from takt.storage.base import Storage
from tests.support.server import TaktServer, basic_auth, make_workspace

AT = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_an_awaited_entry_is_committed_when_the_await_returns(storage: Storage) -> None:
    log = audit_log(storage)
    seen: list[int] = []

    async def read(i: int) -> None:
        await arecord(storage, AT + timedelta(seconds=i), f"k-{i}", "decision.read", f"p_{i}")
        # the handler answers now: its entry must already be in the table, as another reader sees it
        seen.append(len(log.entries(subject=f"p_{i}")))

    async def main() -> None:
        await asyncio.gather(*(read(i) for i in range(60)))

    asyncio.run(main())
    assert seen == [1] * 60
    got = {e.subject: e for e in log.entries(limit=1000)}
    assert set(got) == {f"p_{i}" for i in range(60)}
    assert all(got[f"p_{i}"].key_id == f"k-{i}" and got[f"p_{i}"].at == AT + timedelta(seconds=i)
               and got[f"p_{i}"].action == "decision.read" and got[f"p_{i}"].outcome == "ok" for i in range(60))
    assert log.stats.entries == 60 and log.stats.failed == 0


def test_entries_queued_during_a_commit_share_the_next_one(storage: Storage) -> None:
    log = audit_log(storage)
    entered, release, sizes = threading.Event(), threading.Event(), []
    real = log._insert

    def held(rows: list[tuple[Any, ...]]) -> None:
        sizes.append(len(rows))
        if len(sizes) == 1:
            entered.set()
            assert release.wait(30)
        real(rows)

    log._insert = held  # type: ignore[method-assign]
    n = 1 + audit.ARROW_GROUP + 16  # the second group is larger than ARROW_GROUP: DuckDB inserts it from Arrow
    other_tz = timezone(timedelta(hours=5, minutes=30))

    async def main() -> None:
        first = asyncio.create_task(log.arecord(AT, "k-0", "profile.read", "p_0"))
        while not entered.is_set():
            await asyncio.sleep(0.005)
        rest = [asyncio.create_task(log.arecord(AT.astimezone(other_tz) + timedelta(microseconds=i), f"k-{i}",
                                                "profile.read", None if i % 7 == 0 else f"p_{i}",
                                                "ok" if i % 2 else "denied"))
                for i in range(1, n)]
        await asyncio.sleep(0.05)
        assert not any(t.done() for t in [first, *rest])  # nobody answered before their commit
        release.set()
        await asyncio.gather(first, *rest)

    asyncio.run(main())
    assert sizes == [1, n - 1]
    assert log.stats.groups == 2 and log.stats.max_group == n - 1
    got = {e.key_id: e for e in log.entries(limit=1000)}
    assert len(got) == n
    for i in range(1, n):
        e = got[f"k-{i}"]
        assert e.at == AT + timedelta(microseconds=i), (e.at, i)  # the same instant, whatever its zone
        assert e.subject == (None if i % 7 == 0 else f"p_{i}")
        assert e.outcome == ("ok" if i % 2 else "denied") and e.action == "profile.read"


def test_a_failed_write_fails_the_awaiting_read_and_the_next_one_works(storage: Storage,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    log = audit_log(storage)

    def broken(self: AuditLog, rows: list[Any]) -> None:
        raise OSError("disk full")

    async def attempt() -> None:
        await log.arecord(AT, "k", "decision.read", "p_1")

    monkeypatch.setattr(AuditLog, "_insert", broken)
    with pytest.raises(TaktError) as caught:
        asyncio.run(attempt())
    assert caught.value.code == "audit_unavailable" and caught.value.status == 503
    assert log.entries() == []
    monkeypatch.undo()
    asyncio.run(attempt())
    assert [e.subject for e in log.entries()] == ["p_1"]


def test_an_unknown_action_is_refused_before_anything_is_queued(storage: Storage) -> None:
    with pytest.raises(ValueError):
        asyncio.run(audit_log(storage).arecord(AT, "k", "profile.peek", "p_1"))
    assert audit_log(storage).entries() == []


def test_an_answered_decision_is_in_the_audit_log_after_a_kill(tmp_path: Path) -> None:
    """The claim: the read is answered only once its entry is committed. Kill the server (SIGKILL) right after
    the answers; every answered decision has its entry in the file."""
    ws = make_workspace(tmp_path / "ws")
    server = TaktServer(ws).start()
    try:
        batch = {"batch": [{"type": "identify", "userId": f"u{i}", "messageId": f"id-{i}",
                            "traits": {"email": f"u{i}@example.com"}} for i in range(5)]}
        status, answer = server.post("/v1/batch", orjson.dumps(batch), basic_auth(ws.write_key))
        assert status == 200, answer
        admin = {"Authorization": f"Bearer {ws.admin_key}"}
        answered = []
        for i in range(5):
            body = orjson.dumps({"profile": f"user_id:u{i}", "intent": "marketing", "channels": ["email"]})
            status, answer = server.post("/v1/decide", body, admin)
            assert status == 200, answer
            answered.append(answer["profile_id"])
    finally:
        server.kill()
    from takt.storage.duckdb import DuckDBStorage

    storage = DuckDBStorage(ws.path / "takt.duckdb")
    try:
        got = [e.subject for e in audit_log(storage).entries(action="decision.read", limit=100)]
    finally:
        storage.close()
    assert sorted(got) == sorted(answered)
