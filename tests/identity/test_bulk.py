"""Bulk stitching (takt.identity.bulk) gives exactly the incremental identity graph: same clusters, profile ids,
member order, links, merges with their causes, conflicts, splits, redirects and separations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from takt.events.model import Event, StoredEvent
from takt.identity.bulk import LinkLog, graph_equal, stitch, stitch_events
from takt.identity.config import IdentityConfig
from takt.identity.resolver import IdentityGraph

CFG = IdentityConfig.build()
T0 = datetime(2026, 3, 1, tzinfo=UTC)
# Two "neighbourhoods" of identifiers, so logs have several components: some clean, some with conflicts.
IDS = [f"{t}:{v}{n}" for n in (1, 2) for t, v in (
    ("user_id", "u"), ("anonymous_id", "a"), ("email", "e"), ("crm_id", "C"))] + [
    "user_id:u3", "anonymous_id:a3", "anonymous_id:a4", "anonymous_id:a5", "email:e3", "phone:+4930123456"]


def _value(ident: str) -> str:
    ty, v = ident.split(":", 1)
    return f"{v}@x.com" if ty == "email" else v


def event(i: int, kind: str, ids: list[str], target: str, second: bool) -> Event:
    at = T0 + timedelta(minutes=i // 2)  # pairs of events share a time
    if kind == "unmerge":
        return Event(kind="identity.unmerge", message_id=f"m{i}", source="admin", timestamp=at, received_at=at,
                     properties={"identifier": target})
    if kind == "unmerge_merge":
        return Event(kind="identity.unmerge", message_id=f"m{i}", source="admin", timestamp=at, received_at=at,
                     properties={"merge_id": target})
    if kind == "plain":
        return Event(kind="track", message_id=f"m{i}", source="web", timestamp=at, received_at=at, event="x")
    identifiers = {ident.split(":", 1)[0]: _value(ident) for ident in ids}
    if kind == "vendor":  # a third party's record: weak links
        return Event(kind="record", message_id=f"m{i}", source="vendor", timestamp=at, received_at=at,
                     provenance="third_party", properties={"record_type": "customer", "identifiers": identifiers})
    if kind == "claim":  # a public client's identify: its traits are claims
        return Event(kind="identify", message_id=f"m{i}", source="web", timestamp=at, received_at=at,
                     trust="public", user_id=identifiers.get("user_id"), anonymous_id=identifiers.get("anonymous_id"),
                     traits={k: v for k, v in identifiers.items() if k in ("email", "phone", "crm_id")})
    if second:  # the same identifiers through a Segment identify call
        traits = {k: v for k, v in identifiers.items() if k in ("email", "phone", "crm_id")}
        return Event(kind="identify", message_id=f"m{i}", source="web", timestamp=at, received_at=at,
                     user_id=identifiers.get("user_id"), anonymous_id=identifiers.get("anonymous_id"),
                     traits=traits)
    return Event(kind="record", message_id=f"m{i}", source="crm", timestamp=at, received_at=at,
                 properties={"record_type": "customer", "identifiers": identifiers})


steps = st.lists(
    st.tuples(st.sampled_from(["link"] * 8 + ["vendor", "vendor", "claim", "unmerge", "unmerge_merge", "plain"]),
              st.lists(st.sampled_from(IDS), max_size=4, unique=True), st.sampled_from(IDS),
              st.integers(0, 5), st.booleans()),
    min_size=1, max_size=40,
)


def incremental(raw: list[tuple[str, list[str], str, int, bool]]) -> tuple[IdentityGraph, list[StoredEvent]]:
    g = IdentityGraph(CFG)
    log: list[StoredEvent] = []
    for i, (kind, ids, target, pick, second) in enumerate(raw):
        if kind == "unmerge_merge":
            merges = sorted(m.id for c in g.clusters.values() for m in c.merges)
            target = merges[pick % len(merges)] if merges else "mrg_unknown"
        s = StoredEvent(3 * i + 1, event(i, kind, ids, target, second))  # gaps in positions, as after skips
        log.append(s)
        g.resolve(s)
    return g, log


def assert_same(bulk: IdentityGraph, inc: IdentityGraph) -> None:
    assert graph_equal(bulk, inc) == {}
    assert set(bulk._of) == set(inc._of)
    for ident, c in inc._of.items():
        b = bulk._of[ident]
        assert b.id == c.id
        assert list(b.unique.items()) == list(c.unique.items())
        assert b.link_keys == c.link_keys
    assert bulk.take_changes() == inc.take_changes()


@settings(max_examples=400, deadline=None)
@given(raw=steps)
def test_bulk_stitching_equals_the_incremental_graph(raw: list[tuple[str, list[str], str, int, bool]]) -> None:
    inc, log = incremental(raw)
    assert_same(stitch_events(log, CFG), inc)


def test_clean_components_come_from_the_union_find_and_conflicts_are_replayed() -> None:
    raw = [
        ("link", ["anonymous_id:a1"], "", 0, False),
        ("link", ["anonymous_id:a2", "email:e1"], "", 0, False),
        ("link", ["user_id:u1", "anonymous_id:a1", "email:e1"], "", 0, True),  # merges two clusters
        ("link", ["user_id:u2", "anonymous_id:a3"], "", 0, False),
        ("link", ["user_id:u3", "anonymous_id:a3"], "", 0, False),  # two user ids: a conflict
    ]
    inc, log = incremental(raw)
    graph, stats = stitch(LinkLog.of(log, CFG), CFG)
    assert_same(graph, inc)
    assert stats.replayed_components == 1 and stats.replayed_events == 2
    merged = inc.clusters[inc.profile_of("user_id:u1") or ""]
    # email ranks before anonymous_id: u1 joins e1's cluster, then a1's (older: it survives) merges in
    assert [m.via for m in merged.merges] == [("user_id:u1", "anonymous_id:a1")]
    assert merged.founder == "anonymous_id:a1"
    assert merged.identifiers == ["email:e1@x.com", "anonymous_id:a2", "user_id:u1", "anonymous_id:a1"]
    conflicted = inc.clusters[inc.profile_of("user_id:u2") or ""]
    assert [c.reason for c in conflicted.conflicts.values()] == ["unique"]


def test_a_third_party_event_sends_its_component_to_the_replay() -> None:
    raw = [
        ("link", ["user_id:u1", "email:e1"], "", 0, False),
        ("vendor", ["email:e1", "phone:+4930123456"], "", 0, False),
        ("link", ["user_id:u2", "crm_id:C2", "phone:+4930123456"], "", 0, False),  # takes the vendor's phone
        ("link", ["user_id:u3", "email:e3"], "", 0, False),
    ]
    inc, log = incremental(raw)
    graph, stats = stitch(LinkLog.of(log, CFG), CFG)
    assert_same(graph, inc)
    assert stats.replayed_components == 1 and stats.replayed_events == 3
    assert inc.profile_of("phone:+4930123456") == inc.profile_of("user_id:u2") != inc.profile_of("user_id:u1")


def test_enrichment_adding_identifiers_nobody_else_names_takes_the_fast_path() -> None:
    raw = [
        ("link", ["user_id:u1", "email:e1"], "", 0, False),
        ("vendor", ["email:e1", "phone:+4930123456"], "", 0, False),  # a phone only the vendor names
        ("vendor", ["email:e3", "anonymous_id:a4"], "", 0, False),  # a vendor row about nobody known
        ("link", ["user_id:u2", "email:e2"], "", 0, False),
    ]
    inc, log = incremental(raw)
    graph, stats = stitch(LinkLog.of(log, CFG), CFG)
    assert_same(graph, inc)
    assert stats.replayed_components == 0
    assert inc.clusters[inc.profile_of("user_id:u1") or ""].weak == {"phone:+4930123456"}


def test_an_unmerge_sends_its_component_to_the_replay() -> None:
    raw = [
        ("link", ["user_id:u1", "email:e1"], "", 0, False),
        ("link", ["anonymous_id:a5", "email:e3"], "", 0, False),
        ("unmerge", [], "email:e1@x.com", 0, False),
    ]
    inc, log = incremental(raw)
    graph, stats = stitch(LinkLog.of(log, CFG), CFG)
    assert_same(graph, inc)
    assert stats.replayed_components == 1 and stats.replayed_events == 1
    assert len(inc.clusters) == 3


def test_rebuild_verifies_identity_against_a_bulk_stitching(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    import takt.cli.rebuild as rebuild_cli
    from takt.cli.main import main
    from takt.storage.duckdb import DuckDBStorage

    ws = str(tmp_path / "ws")
    assert CliRunner().invoke(main, ["init", ws]).exit_code == 0
    inc, log = incremental([
        ("link", ["anonymous_id:a1"], "", 0, False),
        ("link", ["anonymous_id:a2", "email:e1"], "", 0, False),
        ("link", ["user_id:u1", "anonymous_id:a1", "email:e1"], "", 0, True),
        ("link", ["user_id:u2", "anonymous_id:a3"], "", 0, False),
        ("link", ["user_id:u3", "anonymous_id:a3"], "", 0, False),
    ])
    s = DuckDBStorage(tmp_path / "ws" / "takt.duckdb")
    s.log.append([x.event for x in log])
    s.close()
    r = CliRunner().invoke(main, ["rebuild", "-w", ws, "--verify-identity"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert f"identity verified: a bulk stitching of the log gives the same {len(inc.clusters)} profiles" in r.output

    def broken(log: LinkLog, config: IdentityConfig):  # type: ignore[no-untyped-def]
        graph, stats = stitch(log, config)
        graph.clusters.pop(sorted(graph.clusters)[0])
        return graph, stats

    monkeypatch.setattr(rebuild_cli, "stitch", broken)
    r = CliRunner().invoke(main, ["rebuild", "-w", ws, "--verify-identity"], catch_exceptions=False)
    assert r.exit_code == 1
    assert "identity differs from a bulk stitching of the log in: clusters" in r.output
