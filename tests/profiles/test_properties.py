"""Invariants of the projection, over generated event logs with merges, conflicts and unmerges."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from takt.events.model import Event, StoredEvent
from takt.identity.extract import identifiers_of
from takt.identity.identifiers import identifier_type
from takt.profiles.config import ProfileConfig
from takt.profiles.fold import fold_event
from takt.profiles.interests import add_weight, decay
from takt.profiles.projector import MemoryEvents, Projector
from takt.profiles.state import ProfileState
from tests.profiles.helpers import TAXONOMY

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BASE = datetime(2026, 1, 1, tzinfo=UTC)
# A low shift threshold, so generated logs derive interest_shifted events often.
CONFIG = ProfileConfig(taxonomy=TAXONOMY, shift_threshold=1.0, shift_margin=0.0)

USERS = [None, None, None, "u1", "u2"]
ANONS = [None, "a1", "a2", "a3"]
EMAILS = [None, "e1@x.com", "E2@x.com", "e3@x.com"]
CRMS = [None, "C1", "C2"]
NAMES = ["Product Viewed", "Products Searched", "Order Completed", "Case Opened", "Case Closed",
         "Product Returned", "Email Verified", "Product Added"]
QUERIES = ["krabi beaches", "new york hotels", "hiking boots", "tents"]
PROVENANCES = ["customer_provided", "crm_import", "observed", "third_party"]
UNMERGE_TARGETS = ["anonymous_id:a1", "anonymous_id:a2", "email:e1@x.com", "user_id:u1", "crm_id:C1"]


@st.composite
def raw_event(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["track", "track", "track", "identify", "page", "record", "alias", "unmerge"]))
    return {
        "kind": kind,
        "user": draw(st.sampled_from(USERS)),
        "anon": draw(st.sampled_from(ANONS)),
        "email": draw(st.sampled_from(EMAILS)),
        "crm": draw(st.sampled_from(CRMS)),
        "name": draw(st.sampled_from(NAMES)),
        "query": draw(st.sampled_from(QUERIES)),
        "category": draw(st.sampled_from([None, "tents", "boots"])),
        "minutes": draw(st.one_of(st.integers(0, 300 * 24 * 60), st.integers(0, 120))),
        "provenance": draw(st.sampled_from(PROVENANCES)),
        "order": draw(st.sampled_from(["o1", "o2", "o3"])),
        "first_name": draw(st.sampled_from(["Ada", "Bea", "Cem"])),
        "target": draw(st.sampled_from(UNMERGE_TARGETS)),
        "dwell": draw(st.sampled_from([None, 5, 45, 600])),
        "trust": draw(st.sampled_from(["server", "server", "verified", "public"])),
    }


def build(i: int, r: dict[str, Any]) -> Event:
    at = BASE + timedelta(minutes=r["minutes"])
    user, anon = r["user"], r["anon"]
    if user is None and anon is None:
        anon = "a1"
    common: dict[str, Any] = {"kind": r["kind"], "message_id": f"m{i}", "source": "web", "timestamp": at,
                              "received_at": at, "provenance": r["provenance"], "trust": r["trust"]}
    if r["kind"] == "unmerge":
        return Event(**{**common, "kind": "identity.unmerge"}, properties={"identifier": r["target"]})
    if r["kind"] == "record":
        ids = {k: v for k, v in (("crm_id", r["crm"]), ("email", r["email"]), ("user_id", user)) if v}
        if not ids:
            ids = {"crm_id": "C1"}
        return Event(**common, properties={
            "record_type": "order" if r["name"] == "Order Completed" else "customer", "row_key": r["order"],
            "order_id": r["order"], "total": 10, "identifiers": ids, "traits": {"first_name": r["first_name"]},
            "contact_points_customer_given": r["provenance"] == "crm_import"})
    if r["kind"] == "alias":
        return Event(**common, user_id=user or "u1", previous_id=anon or "a2")
    traits = {"email": r["email"], "first_name": r["first_name"]} if r["email"] else {}
    if r["kind"] == "identify":
        return Event(**common, user_id=user, anonymous_id=anon, traits=traits)
    props: dict[str, Any] = {"query": r["query"], "order_id": r["order"], "revenue": 5, "category": r["category"],
                             "case_id": r["order"]}
    if r["dwell"] is not None:
        props["dwell_seconds"] = r["dwell"]
    if r["kind"] == "page":
        return Event(**common, user_id=user, anonymous_id=anon, properties={"path": "/" + r["query"]},
                     context={"traits": traits} if traits else {})
    return Event(**common, user_id=user, anonymous_id=anon, event=r["name"], properties=props,
                 context={"traits": traits} if traits else {})


logs = st.lists(raw_event(), min_size=1, max_size=40).map(
    lambda raws: [StoredEvent(2 * i + 1, build(i, r)) for i, r in enumerate(raws)])


def snapshot_json(p: Projector) -> bytes:
    return orjson.dumps(p.snapshot(), option=orjson.OPT_SORT_KEYS)


def whole(log: list[StoredEvent]) -> tuple[Projector, list[Event]]:
    p = Projector(CONFIG)
    return p, p.apply(log)


@SETTINGS
@given(log=logs, cuts=st.lists(st.integers(0, 40), max_size=6))
def test_replay_in_chunks_equals_replay_whole(log: list[StoredEvent], cuts: list[int]) -> None:
    ref, ref_derived = whole(log)
    p = Projector(CONFIG)
    derived: list[Event] = []
    bounds = sorted({0, len(log), *(c for c in cuts if c <= len(log))})
    for a, b in pairwise(bounds):
        derived.extend(p.apply(log[a:b]))
    assert snapshot_json(p) == snapshot_json(ref)
    assert [e.message_id for e in derived] == [e.message_id for e in ref_derived]


@SETTINGS
@given(log=logs, dupes=st.sets(st.integers(0, 39), max_size=10))
def test_applying_an_event_twice_equals_once(log: list[StoredEvent], dupes: set[int]) -> None:
    ref, ref_derived = whole(log)
    # The same batch again is a no-op.
    assert ref.apply(log) == []
    assert snapshot_json(ref) == snapshot_json(whole(log)[0])
    # The same (source, messageId) at a later position, right after the original, changes nothing.
    with_dupes: list[StoredEvent] = []
    for i, s in enumerate(log):
        with_dupes.append(s)
        if i in dupes:
            with_dupes.append(StoredEvent(s.position + 1, s.event))
    p, derived = whole(with_dupes)
    assert p.snapshot()["identity"] == ref.snapshot()["identity"]
    assert p.snapshot()["profiles"] == ref.snapshot()["profiles"]
    assert [e.message_id for e in derived] == [e.message_id for e in ref_derived]


def _without_timeline(d: dict[str, Any]) -> dict[str, Any]:
    """The state less the consent timeline of merged people: identity's record, written when the projector
    re-folds after a merge (tests/policy/test_folded.py checks the ledgers it gives)."""
    policy = d.get("policy")
    if policy is not None:
        d["policy"] = {k: v for k, v in policy.items() if k not in ("t", "tn", "k", "lt", "x")}
    return d


@SETTINGS
@given(log=logs)
def test_profile_state_is_the_fold_of_its_events_in_position_order(log: list[StoredEvent]) -> None:
    """Whatever merges and splits happened on the way, each profile equals a fresh fold of its events."""
    p, _ = whole(log)
    by_position = {s.position: s for s in log}
    seen: set[int] = set()
    for pid in p.profiles():
        state = p.profile(pid)
        assert state is not None
        positions = state.positions
        assert positions == sorted(positions)
        assert not seen & set(positions)
        seen |= set(positions)
        fresh = ProfileState(pid)
        for pos in positions:
            fold_event(fresh, by_position[pos], CONFIG)
        assert _without_timeline(fresh.to_dict()) == _without_timeline(state.to_dict())
        # And every identifier of the profile resolves back to it.
        cluster = p.identity.clusters[pid]
        assert all(p.identity.profile_of(i) == pid for i in cluster.identifiers)
    # Every identifier ever seen belongs to exactly one live cluster (but a third party never names anyone's
    # user id, CRM id, …: a unique identifier only a vendor's record gave besides its anchor is left out).
    for s in log:
        for n, ident in enumerate(identifiers_of(s.event, CONFIG.identity)):
            if n and s.event.provenance == "third_party" and CONFIG.identity.is_unique(identifier_type(ident)):
                continue
            cluster = p.identity.cluster_of(ident)
            assert cluster is not None
            assert p.identity.clusters[cluster.id] is cluster
            assert ident in cluster.identifiers
    members = [i for c in p.identity.clusters.values() for i in c.identifiers]
    assert len(members) == len(set(members))
    # Every event with identifiers is in exactly one profile (unmerges are not profile events).
    with_ids = {s.position for s in log if s.event.kind != "identity.unmerge"
                and identifiers_of(s.event, CONFIG.identity)}  # (a public record's are claims: it may have none)
    assert seen == with_ids


@SETTINGS
@given(log=logs, cut=st.integers(0, 40))
def test_snapshot_restore_mid_log_equals_straight_replay(log: list[StoredEvent], cut: int) -> None:
    ref, ref_derived = whole(log)
    lookup = MemoryEvents()
    first = Projector(CONFIG, lookup)
    d1 = first.apply(log[:cut])
    resumed = Projector.restore(orjson.loads(orjson.dumps(first.snapshot())), CONFIG, lookup)
    d2 = resumed.apply(log[cut:])
    assert snapshot_json(resumed) == snapshot_json(ref)
    assert [e.message_id for e in d1 + d2] == [e.message_id for e in ref_derived]


@SETTINGS
@given(log=logs)
def test_derived_events_fed_back_change_nothing(log: list[StoredEvent]) -> None:
    p, derived = whole(log)
    before = snapshot_json(p)
    start = log[-1].position + 10
    again = p.apply([StoredEvent(start + i, e) for i, e in enumerate(derived)])
    assert again == []
    after = orjson.loads(snapshot_json(p))
    assert after["profiles"] == orjson.loads(before)["profiles"]
    assert after["identity"] == orjson.loads(before)["identity"]


# ---- decay ----
weights = st.floats(0.01, 100, allow_nan=False)
seconds = st.integers(0, 400 * 86400)
half_lives = st.floats(3600, 90 * 86400)


@SETTINGS
@given(adds=st.lists(st.tuples(weights, seconds), min_size=1, max_size=10), h=half_lives,
       t1=seconds, extra=st.integers(0, 400 * 86400))
def test_decay_is_monotone_without_new_events(adds: list[tuple[float, int]], h: float, t1: int,
                                              extra: int) -> None:
    entry: list[float] | None = None
    for w, t in adds:
        entry = add_weight(entry, w, float(t), h)
    assert entry is not None
    score, as_of = entry
    a = decay(score, as_of, as_of + t1, h)
    b = decay(score, as_of, as_of + t1 + extra, h)
    assert 0 <= b <= a <= score


@SETTINGS
@given(adds=st.lists(st.tuples(weights, seconds), min_size=1, max_size=10), h=half_lives, data=st.data())
def test_score_does_not_depend_on_arrival_order(adds: list[tuple[float, int]], h: float,
                                                data: st.DataObject) -> None:
    shuffled = data.draw(st.permutations(adds))
    now = float(max(t for _, t in adds) + 86400)
    expected = sum(w * 2 ** (-(now - t) / h) for w, t in adds)
    for order in (adds, shuffled):
        entry: list[float] | None = None
        for w, t in order:
            entry = add_weight(entry, w, float(t), h)
        assert entry is not None
        assert math.isclose(decay(entry[0], entry[1], now, h), expected, rel_tol=1e-9)


@SETTINGS
@given(w0=weights, w1=weights, gap=st.integers(1, 400 * 86400), h=half_lives)
def test_renewed_interest_rises_again(w0: float, w1: float, gap: int, h: float) -> None:
    entry = add_weight(None, w0, 0.0, h)
    faded = decay(entry[0], entry[1], float(gap), h)
    assert faded < w0
    renewed = add_weight(entry, w1, float(gap), h)
    assert renewed[1] == gap
    assert math.isclose(renewed[0], faded + w1, rel_tol=1e-12)
    assert renewed[0] > faded


@SETTINGS
@given(log=logs, cuts=st.lists(st.integers(0, 40), max_size=4), tail=logs)
def test_incremental_rows_from_take_changes_restore_the_projection(
    log: list[StoredEvent], cuts: list[int], tail: list[StoredEvent]
) -> None:
    """Persisting only what take_changes names, per row, and restoring from the rows, continues exactly."""
    lookup = MemoryEvents()
    p = Projector(CONFIG, lookup)
    cluster_rows: dict[str, Any] = {}
    profile_rows: dict[str, Any] = {}
    bounds = sorted({0, len(log), *(c for c in cuts if c <= len(log))})
    for a, b in pairwise(bounds):
        p.apply(log[a:b])
        ch = p.take_changes()
        for cid in ch.removed_clusters:
            cluster_rows.pop(cid, None)
        for pid in ch.removed_profiles:
            profile_rows.pop(pid, None)
        for cid in ch.clusters:
            cluster_rows[cid] = orjson.loads(orjson.dumps(p.identity.record(cid)))
        for pid in ch.profiles:
            state = p.profile(pid)
            assert state is not None
            profile_rows[pid] = state.to_dict()
    assert sorted(profile_rows) == [pid for pid in p.profiles() if p.profile(pid).events]  # type: ignore[union-attr]
    assert sorted(cluster_rows) == sorted(p.identity.clusters)
    restored = Projector.from_records(p.position, list(cluster_rows.values()), list(profile_rows.values()),
                                      CONFIG, lookup)
    shift = log[-1].position + 1
    more = [StoredEvent(s.position + shift, s.event.with_changes(message_id="t" + s.event.message_id))
            for s in tail]
    d1, d2 = p.apply(more), restored.apply(more)
    assert [e.message_id for e in d1] == [e.message_id for e in d2]
    assert p.profiles() == restored.profiles()
    now = BASE + timedelta(days=400)
    for pid in p.profiles():
        assert restored.to_json(pid, now) == p.to_json(pid, now)
        assert restored.identity.record(pid) == p.identity.record(pid)
    for cid in list(p.identity.redirects):
        assert restored.identity.current_id(cid) == p.identity.current_id(cid)


@SETTINGS
@given(log=logs, later=st.lists(st.integers(0, 200 * 86400), min_size=2, max_size=5))
def test_profile_interests_only_fade_without_new_events(log: list[StoredEvent], later: list[int]) -> None:
    p, _ = whole(log)
    last = max(s.event.timestamp for s in log)
    for pid in p.profiles():
        previous: dict[str, float] | None = None
        for seconds_later in sorted(later):
            view = p.to_json(pid, last + timedelta(seconds=seconds_later))
            scores = {i["key"]: i["score"] for i in view["interests"]}
            listed = [i["score"] for i in view["interests"]]
            assert listed == sorted(listed, reverse=True)
            if previous is not None:
                assert scores.keys() == previous.keys()
                assert all(scores[k] <= previous[k] for k in scores)
            previous = scores


@SETTINGS
@given(log=logs)
def test_every_change_of_a_profiles_top_interest_is_announced_once(log: list[StoredEvent]) -> None:
    """Event by event: a profile that had a top interest and has another one after the event (a merge's survivor
    included) gets exactly one derived shift from the old top to the new; no other shift is derived. Unmerges
    re-fold the parts and announce nothing (a split is not a change of need)."""
    p = Projector(CONFIG)

    def tops() -> dict[str, str | None]:
        return {pid: s.top_interest for pid in p.profiles() if (s := p.profile(pid)) is not None}

    for s in log:
        before = tops()
        found = p.apply([s])
        after = tops()
        got = sorted((d.properties["profile_id"], d.properties["from"], d.properties["to"]) for d in found)
        if s.event.kind == "identity.unmerge":
            assert got == []
            continue
        want = sorted((pid, old, after[pid]) for pid, old in before.items()
                      if old is not None and after.get(pid) not in (None, old))
        assert got == want
