"""The canonical event: round trips, and old record versions stay readable (upcasting)."""

from __future__ import annotations

import pytest

from takt.events.model import CURRENT_VERSION, Event, upcast
from tests.factories import ev


def test_record_round_trip_is_exact() -> None:
    e = ev(3, properties={"a": [1, {"b": None}]}, context={"ip": "1.2.3.4"}, traits={"x": 1.5})
    assert Event.from_record(e.to_record()) == e
    assert Event.from_json(e.to_json()) == e


def test_version_0_records_are_upcast() -> None:
    old = {"type": "track", "messageId": "m", "writeKeySource": "legacy-site", "event": "E", "userId": "u",
           "timestamp": "2025-01-01T00:00:00Z", "receivedAt": "2025-01-01T00:00:01Z"}
    e = Event.from_record(old)
    assert e.source == "legacy-site" and e.provenance == "observed" and e.version == CURRENT_VERSION
    assert upcast(dict(old))["v"] == CURRENT_VERSION


def test_a_record_from_a_newer_takt_is_refused() -> None:
    rec = ev(0).to_record()
    rec["v"] = CURRENT_VERSION + 1
    with pytest.raises(ValueError, match="newer"):
        Event.from_record(rec)
