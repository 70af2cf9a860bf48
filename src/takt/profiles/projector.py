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

Derived events (``interest_shifted``) are returned only for shifts caused by the event being applied, with a
messageId computed from the cause, so a replay from an empty projector derives the same ids again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from takt.errors import not_found
from takt.events.model import Event, StoredEvent
from takt.identity.extract import identifiers_of
from takt.identity.identifiers import parse_identifier
from takt.identity.resolver import IdentityGraph
from takt.profiles.config import ProfileConfig
from takt.profiles.derived import interest_shifted_event
from takt.profiles.fold import IGNORED_KINDS, fold_event
from takt.profiles.lookup import EventLookup, LogEvents, MemoryEvents
from takt.profiles.state import JSON, ProfileState
from takt.profiles.view import profile_json

SNAPSHOT_VERSION = 1

__all__ = ["Changes", "EventLookup", "LogEvents", "MemoryEvents", "Projector"]


@dataclass(frozen=True)
class Changes:
    profiles: list[str]
    removed_profiles: list[str]
    clusters: list[str]
    removed_clusters: list[str]


class Projector:
    def __init__(self, config: ProfileConfig | None = None, events: EventLookup | None = None) -> None:
        self.config = config or ProfileConfig()
        self.events: EventLookup = events if events is not None else MemoryEvents()
        self.identity = IdentityGraph(self.config.identity)
        self._profiles: dict[str, ProfileState] = {}
        self.position = 0
        self._changed: set[str] = set()
        self._removed: set[str] = set()
        self._touched: set[str] = set()
        self._dropped: set[str] = set()

    # ---- applying ----
    def apply(self, stored_events: Iterable[StoredEvent]) -> list[Event]:
        derived: list[Event] = []
        for stored in stored_events:
            if stored.position <= self.position:
                continue
            self.position = stored.position
            derived.extend(self._apply_one(stored))
        return derived

    def _apply_one(self, stored: StoredEvent) -> list[Event]:
        ev = stored.event
        ids: tuple[str, ...] | None = None
        if ev.kind not in IGNORED_KINDS:
            # An event already folded (same source and messageId) is in its anchor's profile: skip it before
            # it touches identity, so a repeat changes nothing (not even conflict counts).
            ids = identifiers_of(ev, self.config.identity)
            known = self._profiles.get(self.identity.anchor_profile(ids) or "")
            if known is not None and known.has(ev.source, ev.message_id):
                return []
        res = self.identity.resolve(stored, ids)
        if res.split is not None:
            self._split(*res.split)
        if res.profile_id is None or stored.event.kind in IGNORED_KINDS:
            return []
        pid = res.profile_id
        absorbed = [a for _, a in res.merged if a in self._profiles]
        state = self._profiles.get(pid)
        if state is not None and not absorbed and state.has(stored.event.source, stored.event.message_id):
            return []
        self.events.put(stored)
        if absorbed or (state is None and res.merged):
            positions = set(state.positions) if state else set()
            for a in absorbed:
                positions.update(self._profiles.pop(a).positions)
            positions.add(stored.position)
            state, shifts = self._refold(pid, sorted(positions), cause=stored.position)
        else:
            state = state or ProfileState(pid)
            shifts = fold_event(state, stored, self.config)
        self._profiles[pid] = state
        self._changed.add(pid)
        self._removed.update(absorbed)
        self._touched.add(pid)
        self._dropped.update(absorbed)
        return [interest_shifted_event(pid, s) for s in shifts]

    def _refold(self, pid: str, positions: Sequence[int], cause: int | None) -> tuple[ProfileState, list[JSON]]:
        state = ProfileState(pid)
        shifts: list[JSON] = []
        for ev in self.events.get(positions):
            found = fold_event(state, ev, self.config)
            if ev.position == cause:
                shifts.extend(found)
        return state, shifts

    def _split(self, old_id: str, new_ids: tuple[str, ...]) -> None:
        old = self._profiles.pop(old_id, None)
        if old is None:
            return
        self._removed.add(old_id)
        self._dropped.add(old_id)
        parts: dict[str, list[int]] = {pid: [] for pid in new_ids}
        for ev in self.events.get(old.positions):
            ids = identifiers_of(ev.event, self.config.identity)
            pid = self.identity.anchor_profile(ids)
            if pid is not None:
                parts.setdefault(pid, []).append(ev.position)
        for pid, positions in parts.items():
            if positions:
                self._profiles[pid], _ = self._refold(pid, positions, cause=None)
                self._changed.add(pid)
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
        touched = sorted(p for p in self._touched if p in self._profiles)
        dropped = sorted(p for p in self._dropped if p not in self._profiles)
        self._touched, self._dropped = set(), set()
        return touched, dropped

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
        found = self._profiles.get(pid)
        return found if found is not None else ProfileState(pid)

    def profiles(self) -> list[str]:
        """Ids of all profiles (every identity cluster), sorted."""
        return sorted(self.identity.clusters)

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
            "profiles": {pid: s.to_dict() for pid, s in sorted(self._profiles.items())},
        }

    @staticmethod
    def from_records(position: int, clusters: list[JSON], profiles: list[JSON],
                     config: ProfileConfig | None = None, events: EventLookup | None = None) -> Projector:
        """A projector from per-row tables: cluster rows (:meth:`IdentityGraph.record`) and profile rows
        (:meth:`ProfileState.to_dict`), as written after :meth:`take_changes`, and the position applied."""
        p = Projector(config, events)
        p.position = position
        p.identity = IdentityGraph.from_records(clusters, p.config.identity)
        p._profiles = {d["id"]: ProfileState.from_dict(d) for d in profiles}
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
        p._profiles = {pid: ProfileState.from_dict(d) for pid, d in data["profiles"].items()}
        return p
