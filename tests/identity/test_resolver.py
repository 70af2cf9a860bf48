from __future__ import annotations

from typing import Any

import pytest

from takt.errors import TaktError
from takt.events.model import Event, StoredEvent
from takt.identity.config import IdentityConfig
from takt.identity.kinds import unmerge_event
from takt.identity.resolver import IdentityGraph, profile_id_for
from tests.factories import ev

CFG = IdentityConfig.build()


def run(events: list[Event], graph: IdentityGraph | None = None, start: int = 1) -> IdentityGraph:
    g = graph or IdentityGraph(CFG)
    for i, e in enumerate(events, start):
        g.resolve(StoredEvent(i, e))
    return g


def unmerge(i: int, **props: Any) -> Event:
    return ev(i, kind="identity.unmerge", user_id=None, source="admin", properties=props)


def test_anonymous_browsing_then_login_on_two_devices_is_one_cluster() -> None:
    g = run([
        ev(1, user_id=None, anonymous_id="phone-anon"),
        ev(2, user_id=None, anonymous_id="laptop-anon"),
        ev(3, user_id="u1", anonymous_id="laptop-anon", kind="identify"),
        ev(4, user_id="u1", anonymous_id="phone-anon", kind="identify"),
    ])
    pid = g.profile_of("user_id:u1")
    assert g.profile_of("anonymous_id:phone-anon") == pid
    assert g.profile_of("anonymous_id:laptop-anon") == pid
    assert len(g.clusters) == 1
    # The surviving id is the older cluster's: founded by the first event of phone-anon.
    assert pid == profile_id_for("anonymous_id:phone-anon", "web", "m-1")
    (merge,) = g.clusters[pid].merges
    assert merge.absorbed == profile_id_for("anonymous_id:laptop-anon", "web", "m-2")
    assert merge.via == ("user_id:u1", "anonymous_id:phone-anon")
    assert (merge.cause.position, merge.cause.message_id) == (4, "m-4")
    assert g.current_id(merge.absorbed) == pid


def test_shared_tablet_with_two_user_ids_is_a_conflict_not_a_merge() -> None:
    g = run([
        ev(1, user_id="alice", anonymous_id="tablet"),
        ev(2, user_id="bob", anonymous_id="tablet"),
        ev(3, user_id="bob", anonymous_id="tablet"),
    ])
    alice, bob = g.profile_of("user_id:alice"), g.profile_of("user_id:bob")
    assert alice != bob
    assert g.profile_of("anonymous_id:tablet") == alice
    for pid in (alice, bob):
        (conflict,) = g.clusters[pid].conflicts.values()
        assert conflict.reason == "unique"
        assert conflict.type == "user_id"
        assert set(conflict.values) == {"alice", "bob"}
        assert conflict.identifiers == ("user_id:bob", "anonymous_id:tablet")
        assert conflict.cause.position == 2
        assert conflict.count == 2
    assert not g.clusters[alice].merges


def test_unique_guard_applies_to_configured_types_through_shared_email() -> None:
    g = run([
        ev(1, kind="record", user_id=None,
           properties={"record_type": "customer", "identifiers": {"crm_id": "C1", "email": "fam@x.com"}}),
        ev(2, kind="record", user_id=None,
           properties={"record_type": "customer", "identifiers": {"crm_id": "C2", "email": "fam@x.com"}}),
    ])
    c1, c2 = g.profile_of("crm_id:C1"), g.profile_of("crm_id:C2")
    assert c1 != c2
    assert g.profile_of("email:fam@x.com") == c1
    assert [c.type for c in g.clusters[c2].conflicts.values()] == ["crm_id"]


def test_non_unique_types_may_hold_several_values() -> None:
    g = run([
        ev(1, user_id="u1", kind="identify", traits={"email": "a@x.com"}),
        ev(2, user_id="u1", kind="identify", traits={"email": "b@x.com"}),
    ])
    assert g.profile_of("email:a@x.com") == g.profile_of("email:b@x.com") == g.profile_of("user_id:u1")
    assert all(not c.conflicts for c in g.clusters.values())


def test_unmerge_identifier_splits_and_later_events_follow_the_split() -> None:
    g = run([
        ev(1, user_id="alice", anonymous_id="a-phone"),
        ev(2, user_id="bob", anonymous_id="b-phone"),
        ev(3, user_id=None, anonymous_id="a-phone", context={"traits": {"email": "family@x.com"}}),
        ev(4, user_id=None, anonymous_id="b-phone", context={"traits": {"email": "family@x.com"}}),
    ])
    # bob's cluster would bring a second user_id: refused, so the shared email sits with alice only.
    alice = g.profile_of("user_id:alice")
    assert g.profile_of("email:family@x.com") == alice
    res = g.resolve(StoredEvent(5, unmerge(5, identifier="email:Family@X.com")))
    assert res.split is not None
    old, parts = res.split
    assert old == alice
    split_id = g.profile_of("email:family@x.com")
    assert split_id != alice
    assert set(parts) == {alice, split_id}
    assert g.profile_of("anonymous_id:a-phone") == alice
    assert g.clusters[split_id].identifiers == ["email:family@x.com"]
    # A later event carrying both is refused as 'unmerged' and belongs to its anchor's profile.
    later = g.resolve(StoredEvent(6, ev(6, user_id=None, anonymous_id="a-phone",
                                        context={"traits": {"email": "family@x.com"}})))
    assert later.profile_id == split_id  # email ranks above anonymous_id: the anchor
    assert g.profile_of("anonymous_id:a-phone") == alice
    reasons = {c.reason for c in g.clusters[alice].conflicts.values()}
    assert "unmerged" in reasons
    assert g.clusters[split_id].splits[0].identifier == "email:family@x.com"


def test_unmerge_by_merge_id_restores_both_sides() -> None:
    g = run([
        ev(1, user_id=None, anonymous_id="x"),
        ev(2, user_id=None, anonymous_id="y", context={"traits": {"phone": "030 1111111"}}),
        ev(3, user_id="u1", anonymous_id="x"),
        ev(4, user_id="u1", anonymous_id="y"),
    ])
    pid = g.profile_of("user_id:u1")
    (merge,) = g.clusters[pid].merges
    g.resolve(StoredEvent(5, unmerge(5, merge_id=merge.id)))
    assert g.profile_of("anonymous_id:x") == g.profile_of("user_id:u1") == pid
    other = g.profile_of("anonymous_id:y")
    assert other != pid
    assert other == merge.absorbed
    assert g.profile_of("phone:+49301111111") == other
    # Linking them again is a conflict, not a merge.
    g.resolve(StoredEvent(6, ev(6, user_id="u1", anonymous_id="y", message_id="again")))
    assert g.profile_of("anonymous_id:y") == other
    assert any(c.reason == "unmerged" for c in g.clusters[pid].conflicts.values())


def test_unmerge_of_unknown_things_is_a_no_op() -> None:
    g = run([ev(1, user_id="u1", anonymous_id="a")])
    before = g.snapshot()
    assert g.resolve(StoredEvent(2, unmerge(2, identifier="email:nobody@x.com"))).split is None
    assert g.resolve(StoredEvent(3, unmerge(3, merge_id="mrg_nope"))).split is None
    assert g.resolve(StoredEvent(4, unmerge(4))).split is None
    assert g.snapshot() == before


def test_snapshot_restore_continues_identically() -> None:
    first = [
        ev(1, user_id="alice", anonymous_id="t"),
        ev(2, user_id="bob", anonymous_id="t"),
        ev(3, user_id=None, anonymous_id="z"),
    ]
    rest = [ev(4, user_id="alice", anonymous_id="z"), unmerge(5, identifier="anonymous_id:t"),
            ev(6, user_id="bob", anonymous_id="t", message_id="m-6b")]
    whole = run(first + rest)
    part = run(first)
    restored = IdentityGraph.restore(part.snapshot(), CFG)
    run(rest, restored, start=4)
    assert restored.snapshot() == whole.snapshot()


def test_unmerge_event_builder_validates_and_is_idempotent() -> None:
    at = ev(0).timestamp
    a = unmerge_event(at=at, config=CFG, identifier="email:Fam@X.com", reason="shared family address")
    b = unmerge_event(at=at, config=CFG, identifier="email:fam@x.com", reason="shared family address")
    assert a.kind == "identity.unmerge"
    assert a.properties == {"identifier": "email:fam@x.com", "reason": "shared family address"}
    assert a.message_id == b.message_id
    assert unmerge_event(at=at, config=CFG, merge_id="mrg_1").message_id != a.message_id
    with pytest.raises(TaktError, match="exactly one"):
        unmerge_event(at=at, config=CFG)
    with pytest.raises(TaktError, match="exactly one"):
        unmerge_event(at=at, config=CFG, identifier="email:a@x.com", merge_id="mrg_1")
    with pytest.raises(TaktError, match="not a merge id"):
        unmerge_event(at=at, config=CFG, merge_id="p_123")
    with pytest.raises(TaktError, match="invalid identifier"):
        unmerge_event(at=at, config=CFG, identifier="phone:12")
    # The built event does what it says.
    g = run([ev(1, user_id="u1", anonymous_id="x", context={"traits": {"email": "fam@x.com"}})])
    g.resolve(StoredEvent(2, a))
    assert g.profile_of("email:fam@x.com") != g.profile_of("user_id:u1")
