"""The set-based rebuild (issue 13, item 5): the whole log's profiles at once, equal to folding it event by event.

The live projector (:class:`~takt.profiles.projector.Projector`) resolves identity event by event and re-folds a
profile from its events whenever two profiles merge; a rebuild knows every event up front, so
:func:`rebuild_events` works by whole sets instead:

1. **Identity in bulk.** Every event's identifiers go into a :class:`~takt.identity.bulk.LinkLog`, and
   :func:`~takt.identity.bulk.stitch` builds the final identity graph at once (equal to the incremental one).
2. **Each event mapped to its final profile** (its anchor identifier's cluster), and the profiles split in
   two sets:

   * **simple**: a profile whose history is one profile from its first event to the last (no merge, split,
     conflict, weak member or separation, and every event names identifiers of this profile only). Its state
     is the fold of its events in position order, its derived events (``interest_shifted``) are the shifts
     that fold meets, under its own id. Its stats, counts, sessions and touchpoints come from the set-based
     aggregates (:mod:`takt.profiles.setbased`, run in SQL by an engine); the order-dependent rest (traits
     and contact points by provenance rank, orders, returns, cases, the policy facts, the interests with the
     top interest and its shifts) from the fold's own functions, event by event, for that part only.
   * **replayed**: every other profile, with every profile connected to it by an event (a *component*),
     is folded by a real :class:`~takt.profiles.projector.Projector` over that component's events only, in
     position order (components never influence each other), so merges re-fold and derive their merge shift
     exactly as live.

3. The caller writes the states, the identity graph and the segment tables in one go and appends the derived
   events (their ids come from their cause, so the log keeps each once).

The result equals the fold's (``tests/profiles/test_setbased_rebuild.py``: random logs with merges, anonymous
→ known, traits, contact points, consent, orders, returns and interest shifts).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlglot import exp

from takt.events.model import Event, StoredEvent
from takt.identity.bulk import LinkLog, stitch
from takt.identity.config import IdentityConfig
from takt.identity.extract import identifiers_of
from takt.identity.kinds import UNMERGE
from takt.identity.resolver import Cluster, IdentityGraph, is_weak
from takt.policy.folded import fold_policy, set_timeline
from takt.profiles.config import ProfileConfig
from takt.profiles.derived import DERIVED_KINDS, interest_shifted_event
from takt.profiles.fold import (
    _KINDS,
    _TRACK,
    IGNORED_KINDS,
    _interests,
    _traits_and_contacts,
    fold_event,
    merge_shift,
)
from takt.profiles.projector import Projector
from takt.profiles.setbased import EV_SCHEMA, Parts, ev_row, stats_assemble, stats_queries
from takt.profiles.state import JSON, ProfileState
from takt.projections.facts import build as build_facts
from takt.projections.runner import SNAPSHOT_NAME
from takt.storage.base import Storage

logger = logging.getLogger(__name__)

Runner = Callable[[dict[str, list[Any]], dict[str, exp.Select]], dict[str, list[tuple[Any, ...]]]]
"""An engine running the aggregates (:func:`takt.storage.duckdb_setbased.run_columns`) over the ``ev`` columns."""


@dataclass
class Rebuilt:
    """What a rebuild computed: the identity graph, every profile's state, the derived events (in the order the
    live projector derives them) and the last position read."""

    graph: IdentityGraph
    states: dict[str, ProfileState]
    derived: list[Event]
    position: int
    timings: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


def fold_rest(state: ProfileState, stored: StoredEvent, config: ProfileConfig) -> list[JSON] | None:
    """:func:`~takt.profiles.fold.fold_event` without the parts the aggregates compute (``_seen``: first and
    last seen, events, counts, sessions, touchpoints). ``None`` when the event was not folded (ignored kind or a
    repeat of a ``(source, messageId)`` the profile holds), else the shifts it caused."""
    ev = stored.event
    if ev.kind in IGNORED_KINDS or state.has(ev.source, ev.message_id):
        return None
    state.note(stored.position, ev.source, ev.message_id)
    _traits_and_contacts(state, stored, config)
    handler = _TRACK.get(ev.event or "") if ev.kind == "track" else _KINDS.get(ev.kind)
    if handler is not None:
        handler(state, stored, config)
    fold_policy(state, stored)
    return _interests(state, stored, config)


def _complex(cluster: Cluster, graph: IdentityGraph) -> bool:
    return bool(cluster.splits or cluster.conflicts or cluster.weak) or (
        bool(graph.separated) and any(i in graph.separated for i in cluster.identifiers))


def _replayed_profiles(graph: IdentityGraph, ids: Sequence[tuple[str, ...] | None]) -> set[str]:
    """The profiles whose components must be replayed: a complex cluster, and every cluster an event connects
    to it (an event naming identifiers of several clusters, or identifiers no cluster holds)."""
    of = graph._of
    parent: dict[str, str] = {}

    def root(c: str) -> str:
        while parent.get(c, c) != c:
            c = parent[c]
        return c

    dirty_roots: set[str] = set()
    for found in ids:
        if not found:
            continue
        anchor = of.get(found[0])
        if anchor is None:
            for i in found:
                c = of.get(i)
                if c is not None:
                    dirty_roots.add(c.id)
            continue
        if len(found) == 1:
            continue
        for i in found[1:]:
            c = of.get(i)
            if c is None:
                dirty_roots.add(anchor.id)
            elif c is not anchor:
                a, b = root(anchor.id), root(c.id)
                if a != b:
                    parent[b] = a
                dirty_roots.add(anchor.id)
    for cid, cluster in graph.clusters.items():
        if _complex(cluster, graph):
            dirty_roots.add(cid)
    dirty = {root(c) for c in dirty_roots}
    out = {c for c in dirty_roots}
    out.update(c for c in parent if root(c) in dirty)
    out.update(c for c in graph.clusters if root(c) in dirty)
    return out


def rebuild_events(events: Sequence[StoredEvent], config: ProfileConfig, run: Runner | None = None,
                   workers: int = 1) -> Rebuilt:
    """Every profile of the log ``events`` (in position order). ``run``: the engine for the aggregates; without
    one the whole fold computes the simple profiles too (the reference, and the fallback). ``workers`` > 1 folds
    the profiles in that many forked processes (profiles are independent: partitioned by id), the merged
    profiles' shifts and the replay in two more."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    idc = config.identity
    links = LinkLog()
    ids: list[tuple[str, ...] | None] = []
    for s in events:
        ev = s.event
        if ev.kind in DERIVED_KINDS:
            ids.append(None)
        elif ev.kind == UNMERGE:
            links.unmerges.append(s)
            ids.append(None)
        else:
            found = identifiers_of(ev, idc)
            ids.append(found)
            links.add(s.position, ev.source, ev.message_id, ev.timestamp, found, is_weak(s))
    graph, _ = stitch(links, idc)
    t1 = time.perf_counter()
    timings["identity"] = t1 - t0

    replayed = _replayed_profiles(graph, ids)
    of = graph._of
    replay: list[StoredEvent] = []
    simple: list[tuple[str, StoredEvent]] = []
    # merged profiles (clean otherwise): the position of the last merge, after which the live projector re-folded
    last_merge = {cid: max(m.cause.position for m in c.merges) for cid, c in graph.clusters.items()
                  if c.merges and cid not in replayed}
    merged_events: list[tuple[StoredEvent, tuple[str, ...]]] = []
    for s, named in zip(events, ids, strict=True):
        if s.event.kind == UNMERGE:
            replay.append(s)
            continue
        if not named:
            continue
        c = of.get(named[0])
        if c is None or c.id in replayed:
            replay.append(s)
        else:
            simple.append((c.id, s))
            if c.id in last_merge:
                merged_events.append((s, named))
    t2 = time.perf_counter()
    timings["map"] = t2 - t1

    sql = run is not None
    parts_of = _partition(simple, max(1, workers))
    tasks: list[tuple[str, Any]] = [("fold", part) for part in parts_of] + [("merged", merged_events),
                                                                            ("replay", replay)]
    results = _run_tasks(tasks, config, last_merge, sql, workers)
    t3 = time.perf_counter()
    timings["fold"] = t3 - t2
    states: dict[str, ProfileState] = {}
    derived: list[tuple[int, Event]] = []
    cols: dict[str, list[Any]] = {n: [] for n in EV_SCHEMA.names}
    replayed_states: list[ProfileState] = []
    for (kind, _), (got_states, got_derived, got_cols) in zip(tasks, results, strict=True):
        derived.extend(got_derived)
        if kind == "replay":
            replayed_states = got_states
            continue
        for state in got_states:
            states[state.id] = state
        if got_cols is not None:
            for n, values in got_cols.items():
                cols[n].extend(values)
    if run is not None:
        parts = stats_assemble(run(cols, stats_queries()))
        for pid, state in states.items():
            _put_stats(state, parts[pid])
    for state in replayed_states:
        states[state.id] = state
    timings["sql"] = time.perf_counter() - t3
    derived.sort(key=lambda pd: pd[0])  # stable: the live order (by cause; one shift per event at most)
    counts = {"events": len(events), "simple_events": len(simple), "replayed_events": len(replay),
              "merged_events": len(merged_events), "merged_profiles": len(last_merge),
              "profiles": len(states), "replayed_profiles": len(replayed)}
    return Rebuilt(graph, dict(sorted(states.items())), [d for _, d in derived],
                   events[-1].position if events else 0, timings, counts)


def _partition(simple: list[tuple[str, StoredEvent]], n: int) -> list[list[tuple[str, StoredEvent]]]:
    """The events split in ``n`` parts by profile (each profile's events in one part, in position order)."""
    if n == 1:
        return [simple]
    parts: list[list[tuple[str, StoredEvent]]] = [[] for _ in range(n)]
    part_of: dict[str, int] = {}
    for item in simple:
        k = part_of.get(item[0])
        if k is None:
            k = part_of[item[0]] = len(part_of) % n
        parts[k].append(item)
    return parts


TaskResult = tuple[list[ProfileState], list[tuple[int, Event]], dict[str, list[Any]] | None]


def _task(kind: str, data: Any, config: ProfileConfig, last_merge: dict[str, int], sql: bool) -> TaskResult:
    if kind == "fold":
        return _fold_profiles(data, config, last_merge, sql)
    if kind == "merged":
        return [], merged_shifts(data, config), None
    p = Projector(config)
    derived: list[tuple[int, Event]] = []
    for d in p.apply(data):
        cause = d.properties.get("cause") or {}
        derived.append((int(cause.get("position", 0)), d))
    return list(p.states()), derived, None


_FORKED: tuple[list[tuple[str, Any]], ProfileConfig, dict[str, int], bool] | None = None
"""What forked workers read (inherited from the parent at fork: nothing is pickled on the way in)."""


def _forked(i: int) -> TaskResult:
    assert _FORKED is not None
    tasks, config, last_merge, sql = _FORKED
    kind, data = tasks[i]
    return _task(kind, data, config, last_merge, sql)


def _run_tasks(tasks: list[tuple[str, Any]], config: ProfileConfig, last_merge: dict[str, int], sql: bool,
               workers: int) -> list[TaskResult]:
    if workers <= 1:
        return [_task(kind, data, config, last_merge, sql) for kind, data in tasks]
    import multiprocessing

    global _FORKED
    _FORKED = (tasks, config, last_merge, sql)
    try:
        with multiprocessing.get_context("fork").Pool(min(workers, len(tasks))) as pool:
            return pool.map(_forked, range(len(tasks)), chunksize=1)
    finally:
        _FORKED = None


def _fold_profiles(simple: list[tuple[str, StoredEvent]], config: ProfileConfig, last_merge: dict[str, int],
                   sql: bool) -> TaskResult:
    """Fold these events into their profiles (simple and merged): with ``sql``, all but the parts the
    aggregates compute, whose ``ev`` rows are returned."""
    idc = config.identity
    states: dict[str, ProfileState] = {}
    derived: list[tuple[int, Event]] = []
    history: dict[str, list[StoredEvent]] = {}
    if not sql:
        for pid, s in simple:
            state = states.get(pid)
            if state is None:
                state = states[pid] = ProfileState(pid)
            shifts = fold_event(state, s, config)
            if pid in last_merge:
                _timeline(state, s, last_merge[pid], history, idc)
            elif shifts:
                derived.extend((s.position, interest_shifted_event(pid, shift)) for shift in shifts)
        return list(states.values()), derived, None
    cols: dict[str, list[Any]] = {n: [] for n in EV_SCHEMA.names}
    gap = timedelta(minutes=config.session_minutes)
    for pid, s in simple:
        state = states.get(pid)
        if state is None:
            state = states[pid] = ProfileState(pid)
        rest = fold_rest(state, s, config)
        if pid in last_merge:
            _timeline(state, s, last_merge[pid], history, idc)
        if rest is None:
            continue
        ev_row(cols, pid, s, config, gap)
        if rest and pid not in last_merge:
            derived.extend((s.position, interest_shifted_event(pid, shift)) for shift in rest)
    return list(states.values()), derived, cols


def _timeline(state: ProfileState, stored: StoredEvent, last_merge: int, history: dict[str, list[StoredEvent]],
              idc: IdentityConfig) -> None:
    """A merged profile's events up to its last merge; after that one, the consent timeline of the people it is
    made of, as the live projector's re-fold records it (:func:`~takt.policy.folded.set_timeline`)."""
    if stored.position > last_merge:
        return
    mine = history.setdefault(state.id, [])
    mine.append(stored)
    if stored.position == last_merge:
        set_timeline(state, mine, idc)
        del history[state.id]


def _interests_only(state: ProfileState, stored: StoredEvent, config: ProfileConfig) -> list[JSON]:
    """The fold's interest part alone (what derives ``interest_shifted``)."""
    ev = stored.event
    if ev.kind in IGNORED_KINDS or state.has(ev.source, ev.message_id):
        return []
    state.note(stored.position, ev.source, ev.message_id)
    return _interests(state, stored, config)


def merged_shifts(events: Sequence[tuple[StoredEvent, tuple[str, ...]]],
                  config: ProfileConfig) -> list[tuple[int, Event]]:
    """The ``interest_shifted`` events the live projector derives for profiles that merged (clean components
    otherwise): identity event by event, as :meth:`Projector._apply_one` resolves it, with only the interest
    part of the fold per profile as it was then (re-folded on a merge, which derives at most the merge's
    shift, :func:`~takt.profiles.fold.merge_shift`). ``events``: those profiles' events with their
    identifiers, in position order."""
    graph = IdentityGraph(config.identity)
    states: dict[str, ProfileState] = {}
    at = {s.position: s for s, _ in events}
    out: list[tuple[int, Event]] = []
    for s, ids in events:
        ev = s.event
        known = states.get(graph.anchor_profile(ids) or "")
        if known is not None and known.has(ev.source, ev.message_id):
            continue
        res = graph.resolve(s, ids)
        if res.profile_id is None:
            continue
        pid = res.profile_id
        absorbed = [a for _, a in res.merged if a in states]
        state = states.get(pid)
        if state is not None and not absorbed and state.has(ev.source, ev.message_id):
            continue
        if absorbed or (state is None and res.merged):
            positions = set(state.folded) if state is not None else set()
            before = state.top_interest if state is not None else None
            for a in absorbed:
                positions.update(states.pop(a).folded)
            positions.add(s.position)
            state = ProfileState(pid)
            for pos in sorted(positions):
                _interests_only(state, at[pos], config)
            found = merge_shift(before, state, s, config)
            shifts = [found] if found is not None else []
        else:
            if state is None:
                state = ProfileState(pid)
            shifts = _interests_only(state, s, config)
        states[pid] = state
        out.extend((s.position, interest_shifted_event(pid, shift)) for shift in shifts)
    return out


def _put_stats(state: ProfileState, parts: Parts) -> None:
    st = state.stats
    st["first_seen"], st["last_seen"], st["events"] = parts.first_seen, parts.last_seen, parts.events
    st["event_counts"] = parts.event_counts
    st["sessions"] = parts.sessions
    state.touchpoints = parts.touchpoints


class _Events:
    """The log in memory, read back by position (what :func:`takt.projections.facts.build` reads)."""

    def __init__(self, events: Sequence[StoredEvent]) -> None:
        self._at = {s.position: s for s in events}

    def get(self, positions: Sequence[int]) -> list[StoredEvent]:
        return [found for p in positions if (found := self._at.get(p)) is not None]


def read_log(storage: Storage, progress: Callable[[int], None] | None = None,
             batch: int = 20_000) -> list[StoredEvent]:
    """Every event of the log, in position order."""
    out: list[StoredEvent] = []
    after = 0
    while chunk := storage.log.read(after, batch):
        out.extend(chunk)
        after = chunk[-1].position
        if progress is not None:
            progress(len(chunk))
    return out


def write(storage: Storage, config: ProfileConfig, events: Sequence[StoredEvent], rebuilt: Rebuilt,
          progress: Callable[[int], None] | None = None) -> None:
    """Replace the profile store's content with ``rebuilt`` (states and identity graph in one transaction, then
    the segment tables built from them and ``events``), and append the derived events the log lacks."""
    store = storage.profiles
    p = Projector(config)
    p.identity = rebuilt.graph
    p.position = rebuilt.position
    for pid, state in rebuilt.states.items():
        p._profiles[pid] = state
    store.clear()
    storage.snapshots.delete(SNAPSHOT_NAME)
    p.persist(store, everything=True)
    if store.has_tables:
        build_facts(rebuilt.states.values(), _Events(events), config, rebuilt.position, store.write_tables, progress)
    if rebuilt.derived:
        storage.log.append(rebuilt.derived)
