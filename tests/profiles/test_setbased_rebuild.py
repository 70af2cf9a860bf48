"""The set-based rebuild (``takt.profiles.rebuild``) equals the live fold (``Projector.apply``) on random logs
with merges (several identifiers per person, anonymous → known), conflicts, unmerges, traits, contact points,
consent, messages, orders, returns, cases and interest shifts: the same states (interest scores to 1e-9
relative; everything else exactly, in the same dict order), the same derived events (ids and order) and the
same identity graph."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from takt.events.model import Event, StoredEvent
from takt.profiles.projector import Projector
from takt.profiles.rebuild import Rebuilt, rebuild_events
from takt.profiles.state import ProfileState
from takt.storage.duckdb_setbased import run_columns
from tests.profiles import test_properties as tp

CONFIG = tp.CONFIG
REL = 1e-9


def run(cols: dict[str, list[Any]], queries: Any) -> Any:
    return run_columns(cols, queries, threads=1)


@st.composite
def extra(draw: st.DrawFn) -> dict[str, Any]:
    return {"what": draw(st.sampled_from(["none", "none", "consent", "message", "session"])),
            "status": draw(st.sampled_from(["granted", "withdrawn"])),
            "channel": draw(st.sampled_from(["email", "sms"])),
            "sid": draw(st.sampled_from(["s1", "s2", 7])),
            "msg": draw(st.sampled_from(["sent", "opened", "clicked"]))}


def decorate(e: Event, x: dict[str, Any]) -> Event:
    """Turn some generated events into consent changes, messages, or give them a sessionId."""
    if e.kind in ("identity.unmerge", "record", "alias"):
        return e
    base: dict[str, Any] = {"message_id": e.message_id, "source": e.source, "timestamp": e.timestamp,
                            "received_at": e.received_at, "provenance": e.provenance, "trust": e.trust,
                            "user_id": e.user_id, "anonymous_id": e.anonymous_id}
    if x["what"] == "consent":
        return Event(kind="consent", properties={"purpose": "marketing", "channel": x["channel"],
                                                 "status": x["status"], "actor": "customer",
                                                 "evidence": {"method": "double_opt_in"}}, **base)
    if x["what"] == "message":
        return Event(kind="message", properties={"message_id": "msg-1", "status": x["msg"], "channel": x["channel"],
                                                 "purpose": "marketing"}, **base)
    if x["what"] == "session":
        return Event(kind=e.kind, event=e.event, name=e.name, properties=e.properties, traits=e.traits,
                     context={**e.context, "sessionId": x["sid"]}, **base)
    return e


@st.composite
def logs(draw: st.DrawFn) -> list[StoredEvent]:
    raws = draw(st.lists(st.tuples(tp.raw_event(), extra()), min_size=1, max_size=40))
    return [StoredEvent(2 * i + 1, decorate(tp.build(i, r), x)) for i, (r, x) in enumerate(raws)]


PERSON = {"a1": "u1", "a2": "u1", "a3": "u2"}
EMAIL = {"u1": "e1@x.com", "u2": "E2@x.com"}


def consistent(r: dict[str, Any]) -> dict[str, Any]:
    """One person per anonymous id, one email per person, no unmerges: merges without conflicts (clean), the
    common case of a real log (a login on a second device)."""
    anon = r["anon"] or "a1"
    user = PERSON[anon] if r["user"] is not None else None
    email = EMAIL[user] if user is not None and r["email"] is not None else None
    return {**r, "kind": "track" if r["kind"] == "unmerge" else r["kind"], "anon": anon, "user": user,
            "email": email, "crm": None}


@st.composite
def merging_logs(draw: st.DrawFn) -> list[StoredEvent]:
    raws = draw(st.lists(st.tuples(tp.raw_event(), extra()), min_size=1, max_size=40))
    return [StoredEvent(2 * i + 1, decorate(tp.build(i, consistent(r)), x)) for i, (r, x) in enumerate(raws)]


def reference(log: list[StoredEvent]) -> tuple[Projector, list[Event]]:
    p = Projector(CONFIG)
    return p, p.apply(log)


def _body(state: ProfileState) -> dict[str, Any]:
    d = state.to_dict()
    d.pop("interests")
    return d


def differences(got: Rebuilt, p: Projector, derived: list[Event]) -> list[str]:
    out: list[str] = []
    want = {s.id: s for s in p.states()}
    if got.states.keys() != want.keys():
        return [f"profiles: {sorted(got.states)} != {sorted(want)}"]
    for pid, state in want.items():
        mine = got.states[pid]
        # exact, dict order included (bytes of the JSON), except the interest scores
        if orjson.dumps(_body(mine)) != orjson.dumps(_body(state)):
            out.append(f"{pid}: {_body(mine)} != {_body(state)}")
        if list(mine.interests) != list(state.interests):
            out.append(f"{pid} interest keys: {list(mine.interests)} != {list(state.interests)}")
            continue
        for key, (score, as_of) in state.interests.items():
            s2, a2 = mine.interests[key]
            if a2 != as_of or not math.isclose(s2, score, rel_tol=REL):
                out.append(f"{pid} interest {key}: {[s2, a2]} != {[score, as_of]}")
    if [(e.message_id, e.properties) for e in got.derived] != [(e.message_id, e.properties) for e in derived]:
        out.append(f"derived: {[e.message_id for e in got.derived]} != {[e.message_id for e in derived]}")
    if got.graph.snapshot() != p.identity.snapshot():
        out.append("identity graph")
    return out


SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(log=logs())
def test_the_set_based_rebuild_equals_the_fold(log: list[StoredEvent]) -> None:
    p, derived = reference(log)
    assert differences(rebuild_events(log, CONFIG, run), p, derived) == []


@SETTINGS
@given(log=merging_logs())
def test_the_set_based_rebuild_equals_the_fold_on_clean_merges(log: list[StoredEvent]) -> None:
    p, derived = reference(log)
    assert differences(rebuild_events(log, CONFIG, run), p, derived) == []


@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(log=logs(), merging=merging_logs())
def test_in_forked_workers_too(log: list[StoredEvent], merging: list[StoredEvent]) -> None:
    for one in (log, merging):
        p, derived = reference(one)
        assert differences(rebuild_events(one, CONFIG, run, workers=2), p, derived) == []
        assert differences(rebuild_events(one, CONFIG, None, workers=3), p, derived) == []


@SETTINGS
@given(log=logs())
def test_without_the_sql_parts_too(log: list[StoredEvent]) -> None:
    p, derived = reference(log)
    assert differences(rebuild_events(log, CONFIG), p, derived) == []


def test_the_comparison_sees_a_difference() -> None:
    t0 = tp.BASE
    log = [StoredEvent(i + 1, Event(kind="track", event="Products Searched", message_id=f"m{i}", source="web",
                                    timestamp=t0 + timedelta(days=i), received_at=t0, user_id="u1",
                                    properties={"query": q}))
           for i, q in enumerate(["krabi", "krabi", "new york", "new york", "new york", "new york"])]
    p, derived = reference(log)
    assert derived  # the log shifts the top interest
    got = rebuild_events(log, CONFIG, run)
    assert differences(got, p, derived) == []
    ((pid, state),) = got.states.items()
    key = next(iter(state.interests))
    state.interests[key][0] *= 1 + 1e-8
    assert differences(got, p, derived) != []
    state.interests[key][0] /= 1 + 1e-8
    state.stats["sessions"]["count"] += 1
    assert differences(got, p, derived) != []
    state.stats["sessions"]["count"] -= 1
    got.derived.pop()
    assert differences(got, p, derived) != []


def test_merged_profiles_are_computed_in_sets_and_conflicts_replayed() -> None:
    t0 = tp.BASE
    common: dict[str, Any] = {"source": "web", "received_at": t0}

    def e(i: int, **kw: Any) -> StoredEvent:
        return StoredEvent(i, Event(kind="track", event="Product Viewed", message_id=f"m{i}",
                                    timestamp=t0 + timedelta(minutes=i), **common, **kw))

    # a1 browses, a2 browses, u1 logs in on both devices (a merge); u2 alone
    log = [e(1, anonymous_id="a1"), e(2, anonymous_id="a2"), e(3, anonymous_id="a1", user_id="u1"),
           e(4, anonymous_id="a2", user_id="u1"), e(5, user_id="u2"), e(6, user_id="u2")]
    p, derived = reference(log)
    got = rebuild_events(log, CONFIG, run)
    assert differences(got, p, derived) == []
    assert got.counts["replayed_events"] == 0 and got.counts["simple_events"] == 6
    assert got.counts["merged_events"] == 4 and got.counts["merged_profiles"] == 1
    # two user ids for one anonymous id: a conflict (user_id is unique), replayed by the projector
    log += [e(7, anonymous_id="a9", user_id="u7"), e(8, anonymous_id="a9", user_id="u8")]
    p, derived = reference(log)
    got = rebuild_events(log, CONFIG, run)
    assert differences(got, p, derived) == []
    assert got.counts["replayed_events"] == 2 and got.counts["simple_events"] == 6


def test_the_store_after_a_set_based_rebuild_equals_the_fold_s(storage: Any) -> None:
    """Through the storage (DuckDB and PostgreSQL): the rows ``write`` leaves equal those of the runner's
    fold from position 0, and the runner continues from them."""
    from takt.clock import system_clock
    from takt.profiles.rebuild import read_log, write
    from takt.projections.runner import ProfileRunner

    t0 = tp.BASE
    rows = [({"kind": "track", "user": u, "anon": a, "email": None, "crm": None, "name": n, "query": q,
              "category": None, "minutes": m, "provenance": "observed", "order": "o1", "first_name": "Ada",
              "target": "", "dwell": None, "trust": "server"})
            for u, a, n, q, m in [(None, "a1", "Products Searched", "krabi beaches", 0),
                                  (None, "a1", "Products Searched", "new york hotels", 1),
                                  (None, "a1", "Products Searched", "new york hotels", 2),
                                  (None, "a2", "Products Searched", "hiking boots", 2),
                                  ("u1", "a1", "Order Completed", "tents", 3),
                                  ("u1", "a2", "Product Viewed", "new york hotels", 4),
                                  ("u2", "a3", "Products Searched", "hiking boots", 5)]]
    storage.log.append([tp.build(i, r) for i, r in enumerate(rows)])
    config = CONFIG
    fold = ProfileRunner(storage, config, system_clock)
    fold.rebuild()
    want = dict(storage.profiles.profiles())
    want_clusters = sorted(storage.profiles.clusters())
    head = storage.log.head()
    assert want and t0 and head > len(rows)  # interest shifts were derived

    events = read_log(storage)
    got = rebuild_events(events, config, run)
    write(storage, config, events, got)
    assert dict(storage.profiles.profiles()) == want
    assert sorted(storage.profiles.clusters()) == want_clusters
    assert storage.log.head() == head  # the derived events were in the log already: stored once
    runner = ProfileRunner(storage, config, system_clock)
    assert runner.load()
    assert runner.catch_up() == 0 or runner.position == head
