"""Small builders for events in tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from takt.events.model import Event

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def ev(i: int = 0, *, source: str = "web", kind: str = "track", message_id: str | None = None,
       user_id: str | None = "u1", anonymous_id: str | None = None, event: str | None = "Product Viewed",
       at: datetime | None = None, **fields: Any) -> Event:
    at = at or T0 + timedelta(seconds=i)
    return Event(
        kind=kind, message_id=message_id or f"m-{i}", source=source, timestamp=at, received_at=at,
        provenance=fields.pop("provenance", "observed"), user_id=user_id, anonymous_id=anonymous_id,
        event=event if kind == "track" else None, **fields,
    )
