"""A customer record naming what a vendor's record named before keeps its strong links through an unmerge
(found by the identity property test: the strong link was not recorded, because a weak link with the same
identifiers was, so a split replayed only the weak one and lost ``crm_id:C1``)."""

from __future__ import annotations

from takt.events.model import StoredEvent
from takt.identity.resolver import IdentityGraph
from tests.identity.test_properties import CFG, check, event


def _split(steps: list[str]) -> list[list[str]]:
    g = IdentityGraph(CFG)
    log: list[StoredEvent] = []
    ids = ["crm_id:C1", "user_id:u1", "anonymous_id:a1"]
    for i, kind in enumerate(steps):
        s = StoredEvent(i + 1, event(i, kind, ids if kind != "unmerge" else [], "user_id:u1"))
        log.append(s)
        g.resolve(s)
        check(g, log)  # every identifier a stronger event vouched for is in a cluster
    return sorted(sorted(c.identifiers) for c in g.clusters.values())


def test_strong_link_after_a_weak_one_with_the_same_identifiers_survives_an_unmerge() -> None:
    # the vendor's record changes nothing of what the customer's record and the unmerge make
    assert _split(["vendor", "link", "unmerge"]) == _split(["link", "unmerge"]) == [
        ["anonymous_id:a1"], ["crm_id:C1"], ["user_id:u1"]]
