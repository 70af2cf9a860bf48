"""Identity invariants over dense generated logs: few identifiers, many links, conflicts and unmerges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from takt.events.model import Event, StoredEvent
from takt.identity.config import IdentityConfig
from takt.identity.extract import identifiers_of
from takt.identity.resolver import IdentityGraph

CFG = IdentityConfig.build()
T0 = datetime(2026, 3, 1, tzinfo=UTC)
IDS = ["user_id:u1", "user_id:u2", "anonymous_id:a1", "anonymous_id:a2", "anonymous_id:a3",
       "email:e1@x.com", "crm_id:C1", "crm_id:C2"]


def event(i: int, kind: str, ids: list[str], target: str) -> Event:
    at = T0 + timedelta(minutes=i)
    if kind == "unmerge":
        return Event(kind="identity.unmerge", message_id=f"m{i}", source="admin", timestamp=at, received_at=at,
                     properties={"identifier": target})
    if kind == "unmerge_merge":
        return Event(kind="identity.unmerge", message_id=f"m{i}", source="admin", timestamp=at, received_at=at,
                     properties={"merge_id": target})
    identifiers = dict(i.split(":", 1) for i in ids) if ids else {"anonymous_id": "a1"}
    vendor = kind == "vendor"  # a third party's record: weak links
    return Event(kind="record", message_id=f"m{i}", source="vendor" if vendor else "crm", timestamp=at,
                 received_at=at, provenance="third_party" if vendor else "crm_import",
                 properties={"record_type": "customer", "identifiers": identifiers})


steps = st.lists(
    st.tuples(st.sampled_from(["link", "link", "link", "vendor", "unmerge", "unmerge_merge"]),
              st.lists(st.sampled_from(IDS), max_size=3, unique=True), st.sampled_from(IDS),
              st.integers(0, 5)),
    min_size=1, max_size=30,
)


def run(raw: list[tuple[str, list[str], str, int]]) -> tuple[IdentityGraph, list[StoredEvent]]:
    g = IdentityGraph(CFG)
    log: list[StoredEvent] = []
    for i, (kind, ids, target, pick) in enumerate(raw):
        if kind == "unmerge_merge":
            merges = sorted(m.id for c in g.clusters.values() for m in c.merges)
            if not merges:
                continue
            target = merges[pick % len(merges)]
        s = StoredEvent(i + 1, event(i, kind, ids, target))
        log.append(s)
        g.resolve(s)
        check(g, log)
    return g, log


def check(g: IdentityGraph, log: list[StoredEvent]) -> None:
    members: list[str] = []
    for cid, c in g.clusters.items():
        assert c.id == cid
        members.extend(c.identifiers)
        assert all(g.cluster_of(i) is c for i in c.identifiers)
        uniques: dict[str, str] = {}
        for ident in c.identifiers:
            ty = ident.split(":")[0]
            if CFG.is_unique(ty):
                assert uniques.setdefault(ty, ident) == ident, f"two {ty} values in {cid}"
        for ident in c.identifiers:
            assert not (g.separated.get(ident, set()) & set(c.identifiers)), "separated identifiers together"
        assert c.weak <= set(c.identifiers) and not any(CFG.is_unique(i.split(":")[0]) for i in c.weak)
        assert c.founder not in c.weak
    assert len(members) == len(set(members))
    seen = {i for s in log for i in identifiers_of(s.event, CFG)}
    # a third party's identifiers join only when nobody has them and no guard refuses them; its anchor always
    vouched = {i for s in log for i in (identifiers_of(s.event, CFG)[:1] if s.event.provenance == "third_party"
                                        else identifiers_of(s.event, CFG))}
    assert vouched <= set(members) <= seen
    for old in g.redirects:
        assert g.current_id(old) in g.clusters


@settings(max_examples=300, deadline=None)
@given(raw=steps)
def test_every_identifier_is_in_exactly_one_consistent_cluster(raw: list[tuple[str, list[str], str, int]]) -> None:
    run(raw)


@settings(max_examples=200, deadline=None)
@given(raw=steps, cut=st.integers(0, 30))
def test_rows_restore_and_continue_identically(raw: list[tuple[str, list[str], str, int]], cut: int) -> None:
    g, log = run(raw)
    part = IdentityGraph(CFG)
    for s in log[:cut]:
        part.resolve(s)
    rows: list[dict[str, Any]] = [orjson.loads(orjson.dumps(part.record(cid))) for cid in sorted(part.clusters)]
    restored = IdentityGraph.from_records(rows, CFG)
    for s in log[cut:]:
        restored.resolve(s)
    assert sorted(restored.clusters) == sorted(g.clusters)
    for cid in g.clusters:
        assert restored.record(cid) == g.record(cid)
    whole = IdentityGraph.restore(orjson.loads(orjson.dumps(part.snapshot())), CFG)
    for s in log[cut:]:
        whole.resolve(s)
    assert whole.snapshot() == g.snapshot()
