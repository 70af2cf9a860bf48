"""The double opt-in sent log's contract, on every backend: at most one confirmation per address hash and
purpose within the window; a released claim can be taken again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from takt.campaigns.double_opt_in import SentLog
from takt.storage.base import Storage

T0 = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
DAY = timedelta(hours=24)


def test_one_confirmation_per_window(storage: Storage) -> None:
    log = SentLog(storage)
    SentLog(storage)  # schema creation is idempotent
    assert log.claim("h1", "marketing", T0, DAY) is True
    assert log.claim("h1", "marketing", T0 + timedelta(hours=23), DAY) is False
    assert log.claim("h1", "newsletter", T0, DAY) is True  # another purpose
    assert log.claim("h2", "marketing", T0, DAY) is True  # another address
    assert log.claim("h1", "marketing", T0 + DAY, DAY) is True  # the window passed
    assert log.claim("h1", "marketing", T0 + DAY + timedelta(hours=1), DAY) is False
    log.release("h1", "marketing")  # the email could not be sent
    assert log.claim("h1", "marketing", T0 + DAY + timedelta(hours=1), DAY) is True
