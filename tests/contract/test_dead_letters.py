"""The dead-letter list's contract, on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from takt.campaigns.dead_letter_store import SqlDeadLetters
from takt.campaigns.dead_letters import DeadLetter
from takt.storage.base import Storage

AT = datetime(2026, 12, 8, 1, 0, tzinfo=UTC)


def letter(i: int, channel: str = "sms", attempts: int = 3) -> DeadLetter:
    return DeadLetter(f"msg_{i:04d}", "camp", 1, "0", f"p{i}", "marketing", channel, "webhook answered 500",
                      attempts, AT + timedelta(minutes=i))


def test_add_get_page_count_and_replay_marks(storage: Storage) -> None:
    store = SqlDeadLetters(storage)
    SqlDeadLetters(storage)  # schema creation is idempotent
    for i in range(5):
        store.add(letter(i, "sms" if i % 2 else "push"))
    assert store.count() == 5
    assert store.get("msg_0003") == letter(3, "sms")
    assert store.get("msg_9999") is None
    first = store.page(limit=2)
    assert [d.id for d in first] == ["msg_0000", "msg_0001"]
    assert [d.id for d in store.page(limit=10, after=first[-1].id)] == ["msg_0002", "msg_0003", "msg_0004"]
    assert [d.id for d in store.page(channel="sms")] == ["msg_0001", "msg_0003"]

    store.mark_replayed("msg_0001", AT + timedelta(hours=1), "sent")
    got = store.get("msg_0001")
    assert got is not None and (got.replayed_at, got.replay_status) == (AT + timedelta(hours=1), "sent")
    assert store.count(pending_only=True) == 4
    assert "msg_0001" not in [d.id for d in store.page(pending_only=True)]

    # the same message failing again: one entry, attempts add up, pending again
    store.add(letter(1, "sms", attempts=2))
    again = store.get("msg_0001")
    assert again is not None and (again.attempts, again.replay_status, again.replayed_at) == (5, None, None)
    assert store.count() == 5
