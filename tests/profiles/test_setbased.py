"""The set-based profile aggregates (``takt.profiles.setbased`` run by DuckDB) equal the Python fold on random
single-identity logs: stats, event counts, sessions and touchpoints exactly, interest scores to 1e-9 relative
(issue 13, item 5, first part)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from takt.events.model import Event, StoredEvent
from takt.identity.extract import identifiers_of
from takt.profiles.config import ProfileConfig
from takt.profiles.projector import Projector
from takt.profiles.setbased import Parts, assemble, differences, extract, queries
from takt.storage.duckdb_setbased import run
from tests.profiles.helpers import TAXONOMY

BASE = datetime(2026, 1, 1, tzinfo=UTC)
CONFIG = ProfileConfig(taxonomy=TAXONOMY, session_minutes=30)
REL = 1e-9

USERS = ["u1", "u2", "u3"]
NAMES = ["Product Viewed", "Products Searched", "Order Completed", "Product Added", "Signed Up", None]
QUERIES = ["krabi beaches", "new york hotels", "hiking boots", "tents", ""]
CONTEXTS: list[dict[str, Any]] = [
    {}, {"channel": "browser"}, {"channel": "server"}, {"library": {"name": "analytics-ios"}},
    {"campaign": {"medium": "email"}}, {"timezone": "Asia/Bangkok"}, {"timezone": "Not/AZone"},
    {"sessionId": "s1"}, {"sessionId": "s2"}, {"sessionId": 7}, {"sessionId": ""}, {"sessionId": True},
]


@st.composite
def raw_event(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "kind": draw(st.sampled_from(["track", "track", "track", "page", "screen", "identify", "record"])),
        "user": draw(st.sampled_from(USERS)),
        "name": draw(st.sampled_from(NAMES)),
        "query": draw(st.sampled_from(QUERIES)),
        "category": draw(st.sampled_from([None, "tents", "boots", "Hiking Gear"])),
        # whole days apart, minutes apart (sessions), or seconds apart
        # (a gap of exactly session_minutes is the same session: multiples of 30 minutes test that edge)
        "minutes": draw(st.one_of(st.integers(0, 300 * 24 * 60), st.integers(0, 240),
                                  st.integers(0, 8).map(lambda k: 30 * k))),
        "seconds": draw(st.sampled_from([0, 0, 0, 1, 59])),
        "context": draw(st.sampled_from(CONTEXTS)),
        "dwell": draw(st.sampled_from([None, 5, 45, 600])),
        "record": draw(st.sampled_from(["order", "case", "customer"])),
        "store": draw(st.booleans()),
        "repeat": draw(st.integers(0, 9)) == 0,
    }


def build(i: int, r: dict[str, Any]) -> Event:
    at = BASE + timedelta(minutes=r["minutes"], seconds=r["seconds"])
    common: dict[str, Any] = {"kind": r["kind"], "message_id": f"m{i}", "source": "web", "timestamp": at,
                              "received_at": at, "provenance": "observed", "context": r["context"]}
    if r["kind"] == "record":
        props: dict[str, Any] = {"record_type": r["record"], "row_key": f"r{i}", "identifiers": {"user_id": r["user"]},
                                 "total": 10, "category": r["category"]}
        if r["store"]:
            props["store"] = "Berlin 1"
        if r["record"] == "case":
            props["channel"] = "phone" if r["store"] else "chat"
        return Event(**common, properties=props)
    if r["kind"] == "identify":
        return Event(**common, user_id=r["user"], traits={"first_name": "Ada"})
    props = {"query": r["query"], "category": r["category"]}
    if r["dwell"] is not None:
        props["dwell_seconds"] = r["dwell"]
    if r["kind"] in ("page", "screen"):
        return Event(**common, user_id=r["user"], name="Home", properties={"path": "/" + r["query"], **props})
    return Event(**common, user_id=r["user"], event=r["name"] or "Signed Up", properties=props)


@st.composite
def logs(draw: st.DrawFn) -> list[StoredEvent]:
    raws = draw(st.lists(raw_event(), min_size=1, max_size=60))
    out: list[StoredEvent] = []
    for i, r in enumerate(raws):
        e = build(i, r)
        out.append(StoredEvent(len(out) + 1, e))
        if r["repeat"]:  # a retry of the same message: the fold skips it
            out.append(StoredEvent(len(out) + 1, e))
    return out


def setbased(log: list[StoredEvent], p: Projector) -> dict[str, Parts]:
    def profile_of(s: StoredEvent) -> str | None:
        return p.identity.anchor_profile(identifiers_of(s.event, CONFIG.identity))

    return assemble(run(extract(log, profile_of, CONFIG), queries(), threads=1))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log=logs())
def test_setbased_equals_the_fold(log: list[StoredEvent]) -> None:
    p = Projector(CONFIG)
    p.apply(log)
    got = setbased(log, p)
    states = {s.id: s for s in p.states()}
    assert got.keys() == states.keys()
    for pid, state in states.items():
        assert differences(got[pid], state, REL) == []
        # the check itself sees a difference
        if state.interests:
            key = next(iter(state.interests))
            off = Parts(**{**got[pid].__dict__, "interests": {**got[pid].interests,
                                                              key: [state.interests[key][0] * (1 + 1e-8),
                                                                    state.interests[key][1]]}})
            assert differences(off, state, REL) != []

def test_the_closed_form_takes_late_events_and_decay_into_account() -> None:
    # a search, one 21 days (a destination half-life) later, and a late one from 42 days before the first
    def search(i: int, days: int) -> StoredEvent:
        at = BASE + timedelta(days=days)
        return StoredEvent(i, Event(kind="track", message_id=f"m{i}", source="web", timestamp=at, received_at=at,
                                    user_id="u1", event="Products Searched", properties={"query": "krabi"}))

    log = [search(1, 42), search(2, 63), search(3, 0)]
    p = Projector(CONFIG)
    p.apply(log)
    (parts,) = setbased(log, p).values()
    score, as_of = parts.interests["destination:krabi"]
    assert as_of == (BASE + timedelta(days=63)).timestamp()
    assert math.isclose(score, 2 * (1 + 0.5 + 0.125), rel_tol=REL)
