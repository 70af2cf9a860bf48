"""Bulk identity stitching: the whole log's identity graph at once, equal to folding it event by event.

:class:`~takt.identity.resolver.IdentityGraph` resolves one event at a time (cluster objects, guards, causes on
every step). A rebuild knows every event up front, so :func:`stitch` first runs a plain union-find over
identifiers interned to ints (lists of ints, path halving, union by size — the same "smaller side joins the
bigger" rule the graph uses, so member order comes out the same), then turns the result into the graph's
objects once per cluster.

**Exactness.** The plain union-find ignores the guards, so it is only trusted where they cannot have fired:
a *component* (identifiers connected by any event) is **clean** when it never holds two values of a unique
type, its third-party (weak) events merge and join nothing and only add identifiers of non-unique types that no
other event names (weak members nothing links through), and no unmerge names one of its identifiers or one of
its merges. In a clean component the incremental
graph never refuses a link, so its clusters, founders (profile ids), member order, links and merges are what
the union-find reproduces. Every other component is **replayed** through a real ``IdentityGraph`` with its own
events in log order (components never influence each other: each event touches only its own component). The
differential test ``tests/identity/test_bulk.py`` checks snapshot equality on random logs with merges,
conflicts and unmerges.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import repeat
from typing import Any

from takt.events.model import StoredEvent
from takt.identity.config import IdentityConfig
from takt.identity.extract import identifiers_of
from takt.identity.kinds import UNMERGE
from takt.identity.resolver import (
    Cause,
    Cluster,
    IdentityGraph,
    Link,
    Merge,
    _hash,
    is_weak,
    iso,
    profile_id_for,
)


@dataclass(slots=True)
class LinkLog:
    """What stitching needs of the log, in position order: per event with identifiers its position, key, time
    and identifiers (the anchor first); the unmerge events whole."""

    positions: list[int] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)
    times: list[datetime] = field(default_factory=list)
    ids: list[tuple[str, ...]] = field(default_factory=list)
    unmerges: list[StoredEvent] = field(default_factory=list)
    weak: set[int] = field(default_factory=set)
    """Indexes (into the lists above) of the third-party events, whose links are weak."""

    def add(self, position: int, source: str, message_id: str, at: datetime, ids: tuple[str, ...],
            weak: bool = False) -> None:
        if ids:
            if weak:
                self.weak.add(len(self.positions))
            self.positions.append(position)
            self.sources.append(source)
            self.message_ids.append(message_id)
            self.times.append(at)
            self.ids.append(ids)

    def add_event(self, stored: StoredEvent, ids: tuple[str, ...] | None = None) -> None:
        ev = stored.event
        if ev.kind == UNMERGE:
            self.unmerges.append(stored)
            return
        self.add(stored.position, ev.source, ev.message_id, ev.timestamp, ids if ids is not None else (),
                 is_weak(stored))

    @staticmethod
    def of(events: Iterable[StoredEvent], config: IdentityConfig) -> LinkLog:
        log = LinkLog()
        for s in events:
            log.add_event(s, identifiers_of(s.event, config))
        return log

    def __len__(self) -> int:
        return len(self.positions)


@dataclass(frozen=True, slots=True)
class StitchStats:
    events: int
    identifiers: int
    clusters: int
    replayed_events: int
    replayed_components: int


def stitch(log: LinkLog, config: IdentityConfig) -> tuple[IdentityGraph, StitchStats]:
    """The identity graph of the whole log (equal to resolving its events one by one in position order).
    The cyclic garbage collector is paused meanwhile: its full passes over the millions of objects this
    creates find nothing (there are no cycles) and would cost more than the stitching."""
    was = gc.isenabled()
    gc.disable()
    try:
        return _stitch(log, config)
    finally:
        if was:
            gc.enable()


def _stitch(log: LinkLog, config: IdentityConfig) -> tuple[IdentityGraph, StitchStats]:
    n = len(log)
    all_ids = log.ids
    index: dict[str, int] = {}
    names: list[str] = []
    parent: list[int] = []
    members: list[list[int] | None] = []
    founded: list[int] = []
    anchors: list[int] = [0] * n
    seen_links: set[tuple[tuple[str, ...], bool]] = set()
    link_events: list[int] = []
    merges: list[tuple[int, str, str, int, int]] = []  # (event, via a, via b, older founding event, newer)
    get = index.get
    weak = log.weak
    weak_start: dict[int, int] = {}  # third-party event → how many identifiers were known before it

    for k in range(n):
        ids = all_ids[k]
        if weak and k in weak:
            weak_start[k] = len(names)
        a_s = ids[0]
        a = get(a_s)
        c = -1
        if a is None:
            for s in ids[1:]:
                j = get(s)
                if j is not None:
                    while parent[j] != j:
                        parent[j] = parent[parent[j]]
                        j = parent[j]
                    c = j
                    a = index[a_s] = len(names)
                    names.append(a_s)
                    parent.append(c)
                    members.append(None)
                    founded.append(-1)
                    m = members[c]
                    assert m is not None
                    m.append(a)
                    break
            else:
                a = c = index[a_s] = len(names)
                names.append(a_s)
                parent.append(c)
                members.append([c])
                founded.append(k)
        else:
            c = a
            while parent[c] != c:
                parent[c] = parent[parent[c]]
                c = parent[c]
        anchors[k] = a
        for s in ids[1:]:
            j = get(s)
            if j is None:
                j = index[s] = len(names)
                names.append(s)
                parent.append(c)
                members.append(None)
                founded.append(-1)
                m = members[c]
                assert m is not None
                m.append(j)
                continue
            while parent[j] != j:
                parent[j] = parent[parent[j]]
                j = parent[j]
            if j == c:
                continue
            mc, md = members[c], members[j]
            assert mc is not None and md is not None
            big, small = (c, j) if len(mc) >= len(md) else (j, c)
            fc, fd = founded[c], founded[j]
            older, newer = (fc, fd) if fc <= fd else (fd, fc)
            parent[small] = big
            mb, ms = members[big], members[small]
            assert mb is not None and ms is not None
            mb.extend(ms)
            members[small] = None
            founded[big] = older
            merges.append((k, a_s, s, older, newer))
            c = big
        key = (ids, k in log.weak)  # as the graph: a strong link is kept even after a weak one with these ids
        if key not in seen_links:
            seen_links.add(key)
            link_events.append(k)
    del seen_links

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    # ---- which components the plain union-find may not speak for ----
    dirty: set[int] = set()
    unique_types = {t.name for t in config.types.values() if t.unique}
    uniques: dict[int, dict[str, str]] = {}  # component → its unique type → value (one each when clean)
    if unique_types:
        for s, i in index.items():
            ty = s.partition(":")[0]
            if ty in unique_types:
                r = root(i)
                have = uniques.setdefault(r, {}).setdefault(ty, s)
                if have != s:
                    dirty.add(r)
    # A third-party event does what the union-find did when it merged nothing, did not join a new anchor to a
    # known cluster, and each identifier it added besides its anchor is of a non-unique type and named by no
    # other event (a weak member nothing links through or takes later); its other identifiers were in the
    # anchor's cluster already. Any other third-party event's component is replayed.
    weak_added: dict[str, int] = {}  # identifier → the third-party event that alone names it
    weak_of: dict[int, list[str]] = {}  # clean-so-far component → its weak members
    if weak:
        merged_by = {m[0] for m in merges}
        for k in weak:
            ids, start = all_ids[k], weak_start[k]
            new = [s for s in ids[1:] if index[s] >= start]
            if k in merged_by or (index[ids[0]] >= start and len(new) < len(ids) - 1):
                dirty.add(root(anchors[k]))
            for s in new:
                if s in weak_added or s.partition(":")[0] in unique_types:
                    dirty.add(root(anchors[k]))
                weak_added[s] = k
        if weak_added:
            for k in range(n):
                for s in all_ids[k]:
                    w = weak_added.get(s)
                    if w is not None and w != k:
                        dirty.add(root(anchors[k]))
        for s, k in weak_added.items():
            r = root(anchors[k])
            if r not in dirty:
                weak_of.setdefault(r, []).append(s)
    probe = IdentityGraph(config)
    merge_ids: dict[str, int] = {}
    if log.unmerges:
        for k, a_s, b_s, _, _ in merges:
            merge_ids["mrg_" + _hash(log.sources[k], log.message_ids[k], a_s, b_s)] = root(index[a_s])
        for u in log.unmerges:
            props = u.event.properties
            raw = props.get("identifier")
            if isinstance(raw, str):
                ident = probe._normal(raw)
                if ident is not None and ident in index:
                    dirty.add(root(index[ident]))
            mid = props.get("merge_id")
            if isinstance(mid, str) and mid in merge_ids:
                dirty.add(merge_ids[mid])

    # ---- the replayed components: the incremental graph, their events only, in log order ----
    graph = IdentityGraph(config)
    replayed = 0
    times: dict[datetime, str] = {}

    def cause(k: int) -> Cause:
        t = log.times[k]
        at = times.get(t)
        if at is None:
            at = times[t] = iso(t)
        return Cause(log.positions[k], log.sources[k], log.message_ids[k], at)

    if dirty or log.unmerges:
        unmerges = log.unmerges
        ui = 0
        for k in range(n):
            pos = log.positions[k]
            while ui < len(unmerges) and unmerges[ui].position < pos:
                graph.resolve(unmerges[ui])
                ui += 1
            if root(anchors[k]) in dirty:
                graph._link(all_ids[k], cause(k), k in log.weak)
                replayed += 1
        for u in unmerges[ui:]:
            graph.resolve(u)

    # ---- the clean components, straight from the union-find ----
    def pid(f: int) -> str:
        return profile_id_for(all_ids[f][0], log.sources[f], log.message_ids[f])

    merge_pids: dict[int, str] = {}

    def merge_pid(f: int) -> str:
        found = merge_pids.get(f)
        if found is None:
            found = merge_pids[f] = pid(f)
        return found

    links_of: dict[int, list[Link]] = {}
    for k in link_events:
        r = root(anchors[k])
        if r not in dirty:
            links_of.setdefault(r, []).append(Link(cause(k), all_ids[k], k in log.weak))
    merges_of: dict[int, list[Merge]] = {}
    for k, a_s, b_s, older, newer in merges:
        r = root(index[a_s])
        if r not in dirty:
            merges_of.setdefault(r, []).append(
                Merge("mrg_" + _hash(log.sources[k], log.message_ids[k], a_s, b_s), merge_pid(older), merge_pid(newer),
                      (a_s, b_s), cause(k)))
    clusters, of, redirects, merge_index = graph.clusters, graph._of, graph.redirects, graph.merge_index
    made = 0
    for r, mem in enumerate(members):
        if mem is None or r in dirty:  # members only for roots
            continue
        f = founded[r]
        idents = [names[i] for i in mem]
        uq = uniques.get(r)
        # the graph's dict holds each unique type in the order its value joined the member list
        unique = {} if not uq else dict(uq) if len(uq) == 1 else dict(
            sorted(uq.items(), key=lambda tv: idents.index(tv[1])))
        lks = links_of.get(r) or []
        cms = merges_of.get(r) or []
        cl = Cluster(pid(f), all_ids[f][0], log.positions[f], idents, unique, lks, {(lk.ids, lk.weak) for lk in lks}, cms,
                     {}, [], set(weak_of.get(r, ())))
        for cm in cms:
            redirects[cm.absorbed] = cl.id
            merge_index[cm.id] = cm.via[0]
            graph.removed.add(cm.absorbed)
        clusters[cl.id] = cl
        of.update(zip(idents, repeat(cl)))
        made += 1
    graph.changed.update(clusters)
    stats = StitchStats(n, len(names), len(clusters), replayed, len(dirty))
    return graph, stats


def stitch_events(events: Iterable[StoredEvent], config: IdentityConfig) -> IdentityGraph:
    """:func:`stitch` over stored events (identifiers extracted here)."""
    return stitch(LinkLog.of(events, config), config)[0]


def graph_equal(a: IdentityGraph, b: IdentityGraph) -> dict[str, Any]:
    """What differs between two graphs' snapshots (empty when equal); for tests and diagnostics."""
    sa, sb = a.snapshot(), b.snapshot()
    return {k: (sa[k], sb[k]) for k in sa if sa[k] != sb[k]}
