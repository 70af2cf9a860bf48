"""An unmerge that re-folds an event into a profile that already exists keeps that profile's own events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from takt.events.model import Event, StoredEvent
from takt.identity.extract import identifiers_of
from takt.profiles.fold import fold_event
from takt.profiles.projector import Projector
from takt.profiles.state import ProfileState
from tests.profiles.helpers import CONFIG
from tests.profiles.test_properties import _without_timeline

AT = datetime(2026, 1, 1, tzinfo=UTC)


def event(i: int, **kw: Any) -> Event:
    fields: dict[str, Any] = {"kind": "track", "message_id": f"m{i}", "source": "web",
                              "timestamp": AT + timedelta(minutes=i), "received_at": AT + timedelta(minutes=i),
                              "provenance": "customer_provided", "event": "Product Viewed", **kw}
    if fields["kind"] != "track":
        fields["event"] = None
    return Event(**fields)


def test_a_split_part_joining_an_existing_profile_keeps_its_events() -> None:
    log = [StoredEvent(i, e) for i, e in enumerate([
        event(1, anonymous_id="a1"),
        # a vendor's event makes a2 a weak member of u1's profile, and one anchored on a2 lands there too
        event(2, user_id="u1", anonymous_id="a2", provenance="third_party"),
        event(3, kind="alias", user_id="u1", previous_id="a1"),
        event(4, anonymous_id="a2", provenance="third_party"),
        # the customer's own event takes a2 (with an email) into a profile of its own
        event(5, anonymous_id="a2", context={"traits": {"email": "e1@x.com"}}),
        # splitting a1 off re-folds the parts: event 4 (anchored on a2) goes to a2's profile, next to event 5
        event(6, kind="identity.unmerge", properties={"identifier": "anonymous_id:a1"}),
    ], 1)]
    p = Projector(CONFIG)
    p.apply(log)
    a2 = p.profile_for("anonymous_id:a2")
    assert a2 is not None
    assert a2.positions == [4, 5]
    fresh = ProfileState(a2.id)
    for pos in a2.positions:
        fold_event(fresh, log[pos - 1], CONFIG)
    assert _without_timeline(fresh.to_dict()) == _without_timeline(a2.to_dict())
    held = sorted(pos for pid in p.profiles() if (s := p.profile(pid)) for pos in s.positions)
    assert held == [s.position for s in log if s.event.kind != "identity.unmerge"
                    and identifiers_of(s.event, CONFIG.identity)]
