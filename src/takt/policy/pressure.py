"""Contact pressure: the marketing budget, quiet hours and the cooling-off period after a complaint.

All windows are rolling and end at ``now``: a message sent at ``t`` counts while ``t > now - window``.
Messages or complaints dated after ``now`` count too (the safe side of a skewed clock).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from takt.policy.config import parse_clock, zone
from takt.policy.messages import MessageRecord


def marketing_sent_since(messages: Iterable[MessageRecord], since: datetime) -> int:
    """Marketing messages sent after ``since``, across all campaigns and channels. A message attempted but not
    (yet) known to have left counts (the safe side); one that only ``failed`` does not."""
    return sum(1 for m in messages if m.intent == "marketing" and m.sent_at > since and not _never_left(m))


def _never_left(m: MessageRecord) -> bool:
    return "failed" in m.statuses and m.statuses <= {"attempted", "failed"}


def in_quiet_hours(now: datetime, time_zone: str, start: str, end: str) -> bool:
    """Is ``now`` within ``[start, end)`` in local time? ``start > end`` spans midnight; equal means never."""
    t = now.astimezone(zone(time_zone)).time().replace(tzinfo=None)
    s, e = parse_clock(start), parse_clock(end)
    if s == e:
        return False
    if s < e:
        return s <= t < e
    return t >= s or t < e


def last_complaint_within(complaints: Iterable[datetime], now: datetime, days: int) -> datetime | None:
    """The latest complaint within the last ``days`` days, if any."""
    since = now - timedelta(days=days)
    recent = [c for c in complaints if c > since]
    return max(recent) if recent else None
