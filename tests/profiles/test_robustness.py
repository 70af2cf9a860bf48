"""The projection never crashes on odd but accepted payloads: any JSON shape in properties, traits, context."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from takt.events.model import Event, StoredEvent
from takt.profiles.projector import Projector
from tests.profiles.helpers import CONFIG

KEYS = ["category", "categories", "products", "query", "interests", "interest", "dwell_seconds", "duration",
        "order_id", "orderId", "revenue", "total", "case_id", "status", "email", "phone", "address", "channel",
        "campaign", "library", "page", "path", "timezone", "sessionId", "device", "traits", "identifiers",
        "record_type", "postal_address", "repair", "in_repair", "product_id", "row_key", "name", "medium",
        "source", "id", "crm_id", "instagram", "email_verified", "phone_verified", "identifier", "merge_id",
        "contact_points_customer_given", "subject", "store"]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12),
                    st.sampled_from(["open", "closed", "refunded", "a@x.com", "+49 30 1234567", "krabi", "web",
                                     "Europe/Berlin", "analytics-ios", "email", "customer", "order", "case"]))
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(st.sampled_from(KEYS), children, max_size=4)),
    max_leaves=12,
)
objects = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=8)


@st.composite
def odd_event(draw: st.DrawFn, i: int = 0) -> Event:
    at = datetime(2026, 5, 1, tzinfo=UTC) + timedelta(minutes=draw(st.integers(0, 10**6)))
    kind = draw(st.sampled_from(["track", "identify", "page", "screen", "group", "alias", "record",
                                 "identity.unmerge", "message", "interest_shifted", "consent"]))
    return Event(
        kind=kind, message_id=f"m{draw(st.integers(0, 10**9))}", source=draw(st.sampled_from(["web", "crm", "pos"])),
        timestamp=at, received_at=at,
        provenance=draw(st.sampled_from(["customer_provided", "crm_import", "observed", "third_party"])),
        user_id=draw(st.sampled_from([None, "u1", "u2"])), anonymous_id=draw(st.sampled_from([None, "a1", "a2"])),
        event=draw(st.sampled_from(["Order Completed", "Products Searched", "Case Opened", "Case Closed",
                                    "Email Verified", "Product Returned", "Product Viewed"])) if kind == "track"
        else None,
        previous_id=draw(st.sampled_from([None, "a3"])),
        properties=draw(objects), traits=draw(objects), context=draw(objects),
    )


@settings(max_examples=100, deadline=None)
@given(events=st.lists(odd_event(), min_size=1, max_size=12))
def test_odd_payloads_never_crash_the_projection(events: list[Event]) -> None:
    p = Projector(CONFIG)
    p.apply([StoredEvent(i + 1, e) for i, e in enumerate(events)])
    now = datetime(2027, 1, 1, tzinfo=UTC)
    for pid in p.profiles():
        view: dict[str, Any] = p.to_json(pid, now)
        assert view["id"] == pid
        orjson.dumps(view)
    assert Projector.restore(orjson.loads(orjson.dumps(p.snapshot())), CONFIG).snapshot() == p.snapshot()
