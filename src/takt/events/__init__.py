"""Frozen, versioned events: the log's records."""

from takt.events.model import (
    CURRENT_VERSION,
    PROVENANCES,
    SEGMENT_KINDS,
    Event,
    StoredEvent,
    parse_time,
    register_kind,
    register_upcaster,
)

__all__ = [
    "CURRENT_VERSION",
    "PROVENANCES",
    "SEGMENT_KINDS",
    "Event",
    "StoredEvent",
    "parse_time",
    "register_kind",
    "register_upcaster",
]
