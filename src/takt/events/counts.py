"""One count of the log's events, the same everywhere (``takt events count``, ``GET /v1/events/count``, the
demo's summary): every stored event, with a breakdown by kind that tells the events sent to takt from those
takt derived itself from other events: ``interest_shifted`` (the profile projection) and ``segment_entered`` /
``segment_exited`` (live segment membership). Unsubscribes and preference changes made on takt's own pages are
the customer's actions, so they count as sent."""

from __future__ import annotations

from typing import Any

from takt.log.base import EventLog


def event_counts(log: EventLog) -> dict[str, Any]:
    """``{"count", "head", "sent", "derived", "by_kind": {"sent": {kind: n}, "derived": {kind: n}}}``;
    ``sent + derived == count``."""
    derived_kinds = _derived_kinds()
    head = log.head()
    by_kind = log.count_by_kind()
    sent = {k: n for k, n in by_kind.items() if k not in derived_kinds}
    derived = {k: n for k, n in by_kind.items() if k in derived_kinds}
    total = sum(by_kind.values())
    return {"count": total, "head": head, "sent": sum(sent.values()), "derived": sum(derived.values()),
            "by_kind": {"sent": sent, "derived": derived}}


def _derived_kinds() -> frozenset[str]:
    from takt.profiles.derived import DERIVED_KINDS
    from takt.segments.live import SEGMENT_ENTERED, SEGMENT_EXITED

    return frozenset({*DERIVED_KINDS, SEGMENT_ENTERED, SEGMENT_EXITED})
