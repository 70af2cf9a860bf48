"""The in-memory projector: identity resolution and the profile fold applied to ``StoredEvent``s in log order.

``apply`` takes events in increasing position (those at or below the last applied position are skipped, so
re-applying a batch is a no-op) and returns the derived events to append to the log.

**Merges and splits re-fold.** A profile's state is defined as the fold of its events in log-position
order. When identity merges two profiles, the survivor is re-folded from the union of both event lists
(read back through an :class:`EventLookup`); when an unmerge splits one, each part is re-folded from the
events whose anchor identifier it now holds. This costs a re-read of the events of the profiles involved
(rare, and bounded by their size) and buys exactness: the result never depends on the order in which
profiles happened to merge or on how events were batched. The in-memory :class:`MemoryEvents` keeps the
events it was given; :class:`LogEvents` reads positions back from the event log (with a bounded cache).

**State in a store, a bounded cache in memory.** With a :class:`~takt.profiles.store.ProfileStore` the projector
keeps at most ``cache_size`` profile states in memory (least recently used first out) and loads the others
from the store; a chunk of events first loads every profile it names in one query. A state changed since the
last :meth:`persist` (dirty) is never dropped: :meth:`persist` writes every change with the position it
reflects in one transaction, after which clean states can go. Without a store every state stays in memory
(tests, simulations). The identity graph stays in memory (see ``docs/profiles.md`` for its cost).

Derived events (``interest_shifted``) are returned only for shifts caused by the event being applied, with a
messageId computed from the cause, so a replay from an empty projector derives the same ids again. An event
that merges profiles derives at most one: from the survivor's top interest as it was to the re-folded
profile's top, when they differ (:func:`~takt.profiles.fold.merge_shift`; a login on a second device whose
anonymous browsing was about something else).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import orjson

from takt.errors import not_found
from takt.events.model import Event, StoredEvent
from takt.identity.extract import identifiers_of
from takt.identity.identifiers import parse_identifier
from takt.identity.resolver import Cluster, IdentityGraph
from takt.policy.folded import set_timeline
from takt.profiles.config import ProfileConfig
from takt.profiles.derived import interest_shifted_event
from takt.profiles.fold import IGNORED_KINDS, fold_event, merge_shift
from takt.profiles.lookup import EventLookup, LogEvents, MemoryEvents
from takt.profiles.state import JSON, ProfileState
from takt.profiles.store import DEFAULT_CACHE_SIZE, ProfileStore, StoreWrite
from takt.profiles.view import profile_json
from takt.projections.facts import Fact, TablesWrite, events_table, fact_of, owners_table, profile_rows

SNAPSHOT_VERSION = 1
FACTS_PENDING_MAX = 100_000
"""Events folded but not yet in ``profile_events`` above which :meth:`Projector.needs_persist` says to write."""

__all__ = ["Changes", "EventLookup", "LogEvents", "MemoryEvents", "Projector"]


@dataclass(frozen=True)
class Changes:
    profiles: list[str]
    removed_profiles: list[str]
    clusters: list[str]
    removed_clusters: list[str]


class Projector:
    def __init__(self, config: ProfileConfig | None = None, events: EventLookup | None = None,
                 store: ProfileStore | None = None, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        self.config = config or ProfileConfig()
        self.events: EventLookup = events if events is not None else MemoryEvents()
        self.identity = IdentityGraph(self.config.identity)
        self.store = store
        self.cache_size = max(1, cache_size)
        self._sid = StoredIdentity.attach(self.identity, store, self.cache_size, False) if store else None
        """The identity graph's clusters and lookups in the store (with a store)."""
        self._profiles: OrderedDict[str, ProfileState] = OrderedDict()
        """The states in memory: all of them without a store, else a cache (least recently used first)."""
        self._stored: set[str] = set()
        """Ids of the profiles the store holds a row for (as of the last :meth:`persist`): only those are
        looked up there, so a new profile costs no query."""
        self.position = 0
        self._changed: set[str] = set()
        self._removed: set[str] = set()
        self._touched: set[str] = set()
        self._dropped: set[str] = set()
        self._fresh: set[str] = set()
        self._gone: set[str] = set()
        """Changed and removed since :meth:`take_fresh` (for the runner's publication)."""
        self.loads = 0
        """States read from the store (a measure of the cache's misses)."""
        self._facts: dict[int, tuple[str, Fact]] = {}
        """With a store: (owner, facts) of every event folded since the last :meth:`persist`, by position (the
        segment tables' ``profile_events`` rows, made from the event in hand: never read back from the log)."""
        self._collect = store is not None and store.has_tables
        self._refolded: set[str] = set()
        """Profiles re-folded by a merge or split since the last :meth:`persist` (their events are re-keyed)."""

    # ---- the cache ----
    def _get(self, pid: str) -> ProfileState | None:
        """A profile's state: from memory, else from the store; ``None`` when it has none."""
        found = self._profiles.get(pid)
        if found is not None:
            if self.store is not None:
                self._profiles.move_to_end(pid)
            return found
        if self.store is None or pid not in self._stored or pid in self._removed:
            return None
        self._fetch([pid])
        return self._profiles.get(pid)

    def _fetch(self, pids: Iterable[str]) -> None:
        """Load these profiles' states from the store into the cache (one query)."""
        if self.store is None:
            return
        stored, cache, removed = self._stored, self._profiles, self._removed
        want = sorted({p for p in pids if p in stored and p not in cache and p not in removed})
        if not want:
            return
        rows = self.store.load(want)
        self.loads += len(rows)
        for pid, blob in rows.items():
            self._profiles[pid] = ProfileState.from_blob(pid, blob)
        self._trim(keep=set(want))

    def prefetch(self, pids: Iterable[str]) -> None:
        """Read these profiles' states into the cache in one query (before reading them one by one)."""
        self._fetch(pids)

    def _put(self, pid: str, state: ProfileState) -> None:
        self._profiles[pid] = state
        self._profiles.move_to_end(pid)
        self._changed.add(pid)
        self._fresh.add(pid)

    def _pop(self, pid: str) -> ProfileState | None:
        state = self._get(pid)
        self._profiles.pop(pid, None)
        return state

    def _trim(self, keep: set[str] | frozenset[str] = frozenset()) -> None:
        """Drop clean states, oldest first, down to ``cache_size`` (dirty ones wait for :meth:`persist`; those
        in ``keep`` were just read for the caller)."""
        if self.store is None or len(self._profiles) <= self.cache_size:
            return
        excess = len(self._profiles) - self.cache_size
        clean = (pid for pid in self._profiles if pid not in self._changed and pid not in keep)
        for pid in [pid for pid, _ in zip(clean, range(excess), strict=False)]:
            del self._profiles[pid]

    def cached(self) -> int:
        """How many profile states are in memory."""
        return len(self._profiles)

    def clusters_cached(self) -> int:
        """How many identity clusters are in memory (all of them without a store)."""
        return self._sid.clusters.cached() if self._sid is not None else len(self.identity.clusters)

    def needs_persist(self) -> bool:
        """Whether the cache is over its size because of states not yet written (call :meth:`persist`)."""
        return self.store is not None and (len(self._profiles) > self.cache_size
                                           or len(self._facts) > FACTS_PENDING_MAX)

    # ---- applying ----
    def apply(self, stored_events: Iterable[StoredEvent]) -> list[Event]:
        batch = [s for s in stored_events if s.position > self.position]
        ids = [identifiers_of(s.event, self.config.identity) if s.event.kind not in IGNORED_KINDS else None
               for s in batch]
        if self.store is not None:
            # one query for every identifier and profile the chunk names, instead of one per miss
            graph = self.identity
            if self._sid is not None:
                self._sid.prefetch(i for found in ids if found for i in found)
            self._fetch(pid for found in ids if found for i in found if (pid := graph.profile_of(i)))
        derived: list[Event] = []
        for stored, found in zip(batch, ids, strict=True):
            if stored.position <= self.position:
                continue
            self.position = stored.position
            derived.extend(self._apply_one(stored, found))
        return derived

    def _apply_one(self, stored: StoredEvent, ids: tuple[str, ...] | None) -> list[Event]:
        ev = stored.event
        if ev.kind not in IGNORED_KINDS:
            # An event already folded (same source and messageId) is in its anchor's profile: skip it before
            # it touches identity, so a repeat changes nothing (not even conflict counts).
            assert ids is not None
            known = self._get(self.identity.anchor_profile(ids) or "")
            if known is not None and known.has(ev.source, ev.message_id):
                return []
        res = self.identity.resolve(stored, ids)
        if res.split is not None:
            self._split(*res.split)
        if res.profile_id is None or stored.event.kind in IGNORED_KINDS:
            return []
        pid = res.profile_id
        absorbed = [a for _, a in res.merged if self._get(a) is not None]
        state = self._get(pid)
        if state is not None and not absorbed and state.has(stored.event.source, stored.event.message_id):
            return []
        self.events.put(stored)
        if self._collect:
            self._facts[stored.position] = (pid, fact_of(stored.event, self.config.identifying, self.config))
        if absorbed or (state is None and res.merged):
            positions = set(state.folded) if state else set()
            before = state.top_interest if state else None
            for a in absorbed:
                gone = self._pop(a)
                if gone is not None:
                    positions.update(gone.folded)
                self._removed.add(a)
            positions.add(stored.position)
            state = self._refold(pid, sorted(positions))
            # one shift at most, from the survivor's top as it was to the merged one (not the shifts the re-fold
            # met, which the profiles as they were never had)
            found = merge_shift(before, state, stored, self.config)
            shifts = [found] if found is not None else []
            if self._collect:
                self._refolded.add(pid)
        else:
            state = state or ProfileState(pid)
            shifts = fold_event(state, stored, self.config)
        self._put(pid, state)
        self._removed.update(absorbed)
        self._touched.add(pid)
        self._dropped.update(absorbed)
        self._gone.update(absorbed)
        return [interest_shifted_event(pid, s) for s in shifts]

    def _refold(self, pid: str, positions: Sequence[int]) -> ProfileState:
        state = ProfileState(pid)
        events = list(self.events.get(positions))
        for ev in events:
            fold_event(state, ev, self.config)
        set_timeline(state, events, self.config.identity)  # who merged when, for the consent ledger
        return state

    def _split(self, old_id: str, new_ids: tuple[str, ...]) -> None:
        old = self._pop(old_id)
        if old is None:
            return
        self._removed.add(old_id)
        self._dropped.add(old_id)
        self._gone.add(old_id)
        parts: dict[str, list[int]] = {pid: [] for pid in new_ids}
        for ev in self.events.get(old.positions):
            ids = identifiers_of(ev.event, self.config.identity)
            pid = self.identity.anchor_profile(ids)
            if pid is not None:
                parts.setdefault(pid, []).append(ev.position)
        for pid, positions in parts.items():
            if positions:
                # a part may join a profile that exists already (an identifier a stronger event took from a weak
                # membership): its own events stay
                existing = self._get(pid)
                if existing is not None:
                    positions = sorted({*positions, *existing.folded})
                self._removed.discard(pid)
                self._put(pid, self._refold(pid, positions))
                if self._collect:
                    self._refolded.add(pid)
                self._touched.add(pid)

    def take_changes(self) -> Changes:
        """What changed since the last call (and resets it): profiles to (re)write, profiles to delete,
        identity clusters to (re)write and to delete. For persisting snapshots incrementally."""
        clusters, gone = self.identity.take_changes()
        profiles = {p for p in self._changed if p in self._profiles}
        removed = {p for p in self._removed if p not in self._profiles}
        self._changed, self._removed = set(), set()
        return Changes(sorted(profiles), sorted(removed), sorted(clusters), sorted(gone))

    def take_touched(self) -> tuple[list[str], list[str]]:
        """Profiles changed and profiles gone since the last call (and resets it): for listeners such as live
        segment membership. Independent of :meth:`take_changes` (which persistence uses)."""
        touched = sorted(p for p in self._touched if self._exists(p))
        dropped = sorted(p for p in self._dropped if not self._exists(p))
        self._touched, self._dropped = set(), set()
        return touched, dropped

    def take_fresh(self) -> tuple[list[str], list[str]]:
        """Profiles changed and profiles gone since the last call (and resets it): what the runner publishes
        (:mod:`takt.projections.published`). Independent of :meth:`take_touched` and :meth:`take_changes`."""
        fresh = [p for p in self._fresh if self._exists(p)]
        gone = [p for p in self._gone if not self._exists(p)]
        self._fresh, self._gone = set(), set()
        return fresh, gone

    def _exists(self, pid: str) -> bool:
        """Whether the profile has a state (in memory, or in the store and not deleted since)."""
        return pid in self._profiles or (pid in self._stored and pid not in self._removed)

    # ---- the store ----
    def persist(self, store: ProfileStore | None = None, *, everything: bool = False) -> StoreWrite:
        """Write what changed since the last call to the store (``store``, else the projector's), with the
        position it reflects, in one transaction; then trim the cache. ``everything`` replaces the store's
        content with the whole state in memory (for a projector that was not loaded from that store).
        Returns what was written."""
        target = store if store is not None else self.store
        if target is None:
            raise ValueError("the projector has no profile store to persist to")
        ch = self.take_changes()
        graph = self.identity
        if everything:
            cids = sorted(graph.clusters)
            w = StoreWrite(self.position, replace=True,
                           profiles=[(pid, s.to_blob()) for pid, s in self._profiles.items()],
                           clusters=[_record(graph, cid) for cid in cids])
        else:
            cids = ch.clusters
            w = StoreWrite(self.position,
                           profiles=[(pid, self._profiles[pid].to_blob()) for pid in ch.profiles],
                           removed_profiles=ch.removed_profiles,
                           clusters=[_record(graph, cid) for cid in cids],
                           removed_clusters=ch.removed_clusters)
        w.members = [(ident, cid) for cid in cids for ident in graph.clusters[cid].identifiers]
        facts, refolded = self._facts, self._refolded
        if not everything and self._collect and target is self.store:
            w.tables = self._tables_write(ch, facts, refolded)
        self._facts, self._refolded = {}, set()
        try:
            target.write(w)
        except BaseException:
            # nothing was written: what changed is still to be written next time
            self._changed.update(p for p, _ in w.profiles)
            self._removed.update(w.removed_profiles)
            self.identity.changed.update(c for c, _, _ in w.clusters)
            self.identity.removed.update(w.removed_clusters)
            self._facts = {**facts, **self._facts}
            self._refolded |= refolded
            raise
        if w.replace:
            self._stored = set()
        self._stored.difference_update(w.removed_profiles)
        self._stored.update(pid for pid, _ in w.profiles)
        if self._sid is not None:
            self._sid.written(w)
        self._trim()
        return w

    def _tables_write(self, ch: Changes, facts: dict[int, tuple[str, Fact]], refolded: set[str]) -> TablesWrite:
        """The segment tables' share of a persist: rows of the changed profiles, the new events' rows, and the
        owners of every event of a re-folded profile (merges and splits re-key only those)."""
        removed = set(ch.removed_profiles)
        owners = [(pid, pos) for pid in sorted(refolded) if pid not in removed and pid in self._profiles
                  for pos in self._profiles[pid].folded]
        return TablesWrite(
            self.position,
            rows=profile_rows((self._profiles[pid] for pid in ch.profiles), self.config),
            changed=list(ch.profiles), removed=sorted(removed),
            events=events_table([(owner, pos, f) for pos, (owner, f) in sorted(facts.items())]),
            owners=owners_table(owners))

    @staticmethod
    def from_store(store: ProfileStore, config: ProfileConfig | None = None, events: EventLookup | None = None,
                   cache_size: int = DEFAULT_CACHE_SIZE, eager: bool = False) -> Projector | None:
        """A projector continuing from the store's rows (``None`` when the store holds none): the identity
        graph is read whole, profile states on demand. ``eager`` reads every state into memory and detaches
        the store (for a process that does not write it: rows another process writes later may reflect a
        later position than this one's)."""
        position = store.position()
        if position is None:
            return None
        if eager:
            p = Projector(config, events)
            p.position = position
            # from_records reads its rows once, in order: a generator keeps one row at a time in memory
            rows = (orjson.loads(b) for b in store.clusters())
            p.identity = IdentityGraph.from_records(cast(list[dict[str, Any]], rows), p.config.identity)
            for pid, blob in store.profiles():
                p._profiles[pid] = ProfileState.from_blob(pid, blob)
            return p
        p = Projector(config, events, store, cache_size)
        p.position = position
        assert p._sid is not None
        p._sid._read_index()
        # one string object per id for both sets of ids (a million ids: tens of MB less)
        canon = {cid: cid for cid in p._sid.clusters.stored}
        p._stored = {canon.get(pid, pid) for pid in store.profile_ids()}
        return p

    # ---- queries ----
    def profile(self, profile_id: str) -> ProfileState | None:
        """A profile's state by id (a merged-away id finds its survivor). A person identity knows but no event
        belongs to yet (an identifier refused by a guard) has an empty state; an unknown id gives ``None``."""
        pid = self.identity.current_id(profile_id)
        return self._state(pid) if pid else None

    def profile_for(self, identifier: str) -> ProfileState | None:
        """The profile holding ``type:value`` (normalized first; a malformed identifier is a TaktError)."""
        pid = self.identity.profile_of(parse_identifier(identifier, self.config.identity))
        return self._state(pid) if pid else None

    def _state(self, pid: str) -> ProfileState:
        found = self._get(pid)
        return found if found is not None else ProfileState(pid)

    def profiles(self) -> list[str]:
        """Ids of all profiles (every identity cluster), sorted."""
        return sorted(self.identity.clusters)

    def states(self) -> Iterator[ProfileState]:
        """Every profile state that has events, by id: from memory and, in batches, from the store (without
        filling the cache)."""
        ids = [pid for pid in self.profiles()]
        for i in range(0, len(ids), 2_000):
            part = ids[i:i + 2_000]
            missing = [p for p in part if p in self._stored and p not in self._profiles and p not in self._removed]
            rows = self.store.load(missing) if self.store is not None and missing else {}
            for pid in part:
                state = self._profiles.get(pid)
                if state is None and pid in rows:
                    state = ProfileState.from_blob(pid, rows[pid])
                if state is not None:
                    yield state

    def to_json(self, profile_id: str, now: datetime) -> JSON:
        """The API shape of one profile, interests decayed to ``now``; an unknown id is a not-found error."""
        state = self.profile(profile_id)
        if state is None:
            raise not_found(f"no profile {profile_id!r}")
        cluster = self.identity.clusters.get(state.id)
        return profile_json(state, cluster, now, self.config)

    # ---- snapshots ----
    def snapshot(self) -> JSON:
        return {
            "version": SNAPSHOT_VERSION,
            "position": self.position,
            "identity": self.identity.snapshot(),
            "profiles": {s.id: s.to_dict() for s in self.states()},
        }

    @staticmethod
    def from_records(position: int, clusters: list[JSON], profiles: list[JSON],
                     config: ProfileConfig | None = None, events: EventLookup | None = None) -> Projector:
        """A projector from per-row tables: cluster rows (:meth:`IdentityGraph.record`) and profile rows
        (:meth:`ProfileState.to_dict`), as written after :meth:`take_changes`, and the position applied."""
        p = Projector(config, events)
        p.position = position
        p.identity = IdentityGraph.from_records(clusters, p.config.identity)
        p._profiles = OrderedDict((d["id"], ProfileState.from_dict(d)) for d in profiles)
        return p

    @staticmethod
    def restore(data: dict[str, Any], config: ProfileConfig | None = None,
                events: EventLookup | None = None) -> Projector:
        """A projector continuing from a snapshot. ``events`` must be able to read back every position the
        profiles list (it is used on merges and splits)."""
        if data.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported projector snapshot version {data.get('version')!r}")
        p = Projector(config, events)
        p.position = int(data["position"])
        p.identity = IdentityGraph.restore(data["identity"], p.config.identity)
        p._profiles = OrderedDict((pid, ProfileState.from_dict(d)) for pid, d in data["profiles"].items())
        return p


def _record(identity: IdentityGraph, cluster_id: str) -> tuple[str, bytes, bytes]:
    """A cluster's store row: the whole record, and the part the graph keeps in memory (``idx``)."""
    rec = identity.record(cluster_id)
    idx = {"merges": [[m["id"], m["via"][0], m["absorbed"]] for m in rec["merges"]],
           "separated": rec.get("separated", {})}
    return cluster_id, orjson.dumps(rec), orjson.dumps(idx)


# ---- the identity graph over the store ----
class StoredClusters(dict[str, Cluster]):
    """``IdentityGraph.clusters`` over the store: the dict holds the clusters in memory (read this session or
    changed), ``stored`` the ids the store holds a row for, ``gone`` stored ids deleted since the last write.
    Reading a stored id that is not in memory loads its row."""

    def __init__(self, backing: StoredIdentity) -> None:
        super().__init__()
        self.backing = backing
        self.stored: set[str] = set()
        self.gone: set[str] = set()

    def _load(self, cid: str) -> Cluster | None:
        if cid in self.stored and cid not in self.gone:
            self.backing.load_clusters([cid])
            return dict.get(self, cid)
        return None

    def get(self, cid: str, default: Any = None) -> Any:
        found = dict.get(self, cid)
        if found is None:
            found = self._load(cid)
        return default if found is None else found

    def __getitem__(self, cid: str) -> Cluster:
        found = self.get(cid)
        if found is None:
            raise KeyError(cid)
        return cast(Cluster, found)

    def __contains__(self, cid: object) -> bool:
        return dict.__contains__(self, cid) or (cid in self.stored and cid not in self.gone)

    def __setitem__(self, cid: str, c: Cluster) -> None:
        dict.__setitem__(self, cid, c)
        self.gone.discard(cid)

    def __delitem__(self, cid: str) -> None:
        if cid not in self:
            raise KeyError(cid)
        dict.pop(self, cid, None)
        if cid in self.stored:
            self.gone.add(cid)

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids())

    def __len__(self) -> int:
        return len(self.ids())

    def ids(self) -> list[str]:
        out = {c for c in self.stored if c not in self.gone}
        out.update(dict.keys(self))
        return sorted(out)

    def values(self) -> Any:
        return [self[c] for c in self.ids()]

    def items(self) -> Any:
        return [(c, self[c]) for c in self.ids()]

    def keys(self) -> Any:
        return self.ids()

    def cached(self) -> int:
        return dict.__len__(self)


class StoredMembers(dict[str, Cluster]):
    """``IdentityGraph._of`` over the store: identifier → cluster. What the graph set this session is kept
    until the next write (it is newer than the store's member rows); other identifiers are looked up in the
    store (``absent`` remembers the ones no cluster holds) and their cluster loaded."""

    def __init__(self, backing: StoredIdentity) -> None:
        super().__init__()
        self.backing = backing
        self.absent: set[str] = set()

    def get(self, ident: str, default: Any = None) -> Any:
        found = dict.get(self, ident)
        if found is None and ident not in self.absent:
            self.backing.prefetch([ident])
            found = dict.get(self, ident)
        return default if found is None else found

    def __getitem__(self, ident: str) -> Cluster:
        found = self.get(ident)
        if found is None:
            raise KeyError(ident)
        return cast(Cluster, found)

    def __setitem__(self, ident: str, c: Cluster) -> None:
        dict.__setitem__(self, ident, c)
        self.absent.discard(ident)


class StoredIdentity:
    """Puts an :class:`IdentityGraph`'s clusters and identifier lookups in the store: the graph keeps in memory
    only what every event may need (redirects of merged-away ids, the merge index, separations) and the
    clusters read or changed since the last write (at most ``cache_size`` after it)."""

    def __init__(self, graph: IdentityGraph, store: ProfileStore, cache_size: int) -> None:
        self.graph = graph
        self.store = store
        self.cache_size = cache_size
        self.clusters = StoredClusters(self)
        self.members = StoredMembers(self)
        graph.clusters = self.clusters
        graph._of = self.members
        self.loads = 0

    @staticmethod
    def attach(graph: IdentityGraph, store: ProfileStore, cache_size: int, read_index: bool) -> StoredIdentity:
        si = StoredIdentity(graph, store, cache_size)
        if read_index:
            si._read_index()
        return si

    def _read_index(self) -> None:
        g, stored = self.graph, self.clusters.stored
        merges: list[tuple[str, str]] = []
        for cid, raw in self.store.cluster_index():
            stored.add(cid)
            idx = orjson.loads(raw)
            for merge_id, via, absorbed in idx["merges"]:
                g.merge_index[merge_id] = via
                merges.append((absorbed, cid))
            for ident, others in idx["separated"].items():
                g.separated.setdefault(ident, set()).update(others)
        for absorbed, cid in merges:
            if absorbed not in stored:
                g.redirects[absorbed] = cid

    def load_clusters(self, cids: Iterable[str]) -> None:
        """Read these clusters' rows into memory (ids in memory, unknown or deleted are skipped)."""
        cl = self.clusters
        want = [c for c in cids if c in cl.stored and c not in cl.gone and not dict.__contains__(cl, c)]
        if not want:
            return
        config = self.graph.config
        for cid, raw in self.store.load_clusters(sorted(set(want))).items():
            rec = orjson.loads(raw)
            c = Cluster.from_dict(rec, config)
            dict.__setitem__(cl, cid, c)
            for ident in c.identifiers:
                if not dict.__contains__(self.members, ident):
                    dict.__setitem__(self.members, ident, c)
            self.loads += 1

    def prefetch(self, identifiers: Iterable[str]) -> None:
        """Look these identifiers up in the store (one query) and read their clusters."""
        mem = self.members
        want = sorted({i for i in identifiers if not dict.__contains__(mem, i) and i not in mem.absent})
        if not want:
            return
        found = self.store.members(want)
        live: dict[str, str] = {}
        for ident in want:
            cid = found.get(ident)
            current = self.graph.current_id(cid) if cid is not None else None
            if current is None:
                mem.absent.add(ident)
            else:
                live[ident] = current
        self.load_clusters(live.values())
        for ident, cid in live.items():
            c = self.clusters.get(cid)
            if c is not None and not dict.__contains__(mem, ident):
                dict.__setitem__(mem, ident, c)

    def written(self, w: StoreWrite) -> None:
        """After ``w`` is in the store: the store's ids, and memory trimmed back to ``cache_size`` clusters
        (whatever changed is written now, so any cluster may go)."""
        cl = self.clusters
        if w.replace:
            cl.stored = set()
        cl.stored.difference_update(w.removed_clusters)
        cl.stored.update(cid for cid, _, _ in w.clusters)
        cl.gone.clear()
        self.members.absent.clear()
        if cl.cached() > self.cache_size:
            excess = cl.cached() - self.cache_size
            for cid in [c for c, _ in zip(dict.keys(cl), range(excess), strict=False)]:
                dict.pop(cl, cid, None)
            dict.clear(self.members)  # members are in the store now; the ones still needed are read again

    def member_rows(self, cluster_ids: Iterable[str]) -> list[tuple[str, str]]:
        return [(ident, cid) for cid in cluster_ids for ident in self.clusters[cid].identifiers]

