"""One count of the log's events, the same everywhere (``takt events count``, ``GET /v1/events/count``, the
demo's summary): every stored event, with a breakdown by kind that tells the events sent to takt from those
takt derived itself (``interest_shifted``: the profile projection's own kinds)."""

from __future__ import annotations

from typing import Any

from takt.log.base import EventLog


def event_counts(log: EventLog) -> dict[str, Any]:
    """``{"count", "head", "sent", "derived", "by_kind": {"sent": {kind: n}, "derived": {kind: n}}}``;
    ``sent + derived == count``."""
    from takt.profiles.derived import DERIVED_KINDS

    head = log.head()
    by_kind = log.count_by_kind()
    sent = {k: n for k, n in by_kind.items() if k not in DERIVED_KINDS}
    derived = {k: n for k, n in by_kind.items() if k in DERIVED_KINDS}
    total = sum(by_kind.values())
    return {"count": total, "head": head, "sent": sum(sent.values()), "derived": sum(derived.values()),
            "by_kind": {"sent": sent, "derived": derived}}
