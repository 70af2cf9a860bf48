"""Identity resolution: a deterministic fold of events into clusters of identifiers, one per person.

Rules (the state is a function of the log in position order, whatever the batching):

* An event's identifiers (:func:`~takt.identity.extract.identifiers_of`) name one person. Its **anchor**
  (the first by type priority) decides the profile the event belongs to; the others are linked to it.
* A new identifier joins the anchor's cluster; identifiers in two clusters merge them (union-find; the
  identifier → cluster map is relabelled on the smaller side). The **profile id** is
  ``p_`` + a hash of the identifier and event (source, messageId) that founded the cluster; on a merge the
  **older** cluster's id survives (lower founding position) and the other becomes a redirect.
* **Guards**: a link that would put two values of a *unique* type (``user_id``, ``crm_id``, …) in one cluster,
  or two identifiers an unmerge separated, is not merged; it is recorded as a **conflict** on both clusters
  (one record per identifier pair, with its first cause and a count). A new identifier refused that way gets
  a cluster of its own.
* **Third-party links are weak** (an event of provenance ``third_party``: an enrichment file, a data vendor).
  Such an event never merges two clusters and never joins its anchor to another person's cluster; its other
  identifiers that belong to nobody yet join the anchor's cluster as **weak members** (values of unique types
  are ignored; one an unmerge separated from the anchor gets a cluster of its own).
  A weak member never links: a later event naming it (not as its anchor) does not join or merge through it.
  When a stronger event (any other provenance) names a weak member of another cluster as one of its own, the
  stronger link wins: the identifier moves to that event's cluster and both record an ``outranked`` conflict
  (the weak member was a leaf, so its old cluster stays whole). A third-party link between two known people
  is not followed; both record a ``third_party`` conflict. So a bought identifier never keeps a customer's own
  identifiers apart, whatever the order the data arrived in.
* **Unmerge** (``identity.unmerge``): by ``identifier`` the identifier is separated from every other member;
  by ``merge_id`` the two sides as they were just before that merge are separated. The cluster is then
  rebuilt by re-running its recorded links (the first event of each distinct identifier set) with the
  separations in force; the component with the old founder keeps the old id, a split-off identifier gets
  ``p_`` + hash("split", identifier, unmerge event). Later links across a separation are conflicts.

Every merge and conflict keeps its cause: the event's position, source, messageId and time, and the linking
identifiers. Memory is proportional to identifiers and distinct identifier sets, not to events.
"""

from __future__ import annotations

import hashlib
import heapq
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from takt.events.model import StoredEvent
from takt.identity.config import IdentityConfig
from takt.identity.extract import identifiers_of
from takt.identity.identifiers import identifier_type, split_identifier
from takt.identity.kinds import UNMERGE


def _hash(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:20]


def aware(t: datetime) -> datetime:
    """A time without a zone is UTC (never the machine's local time: results must not depend on it)."""
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def iso(t: datetime) -> str:
    """Fixed-width UTC ISO 8601 (microseconds always present), so stored times compare as strings."""
    if t.tzinfo is UTC:  # what the log gives back: no conversion needed
        return t.isoformat(timespec="microseconds")[:-6] + "Z"
    return aware(t).astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def is_weak(stored: StoredEvent) -> bool:
    """Whether the event's links are weak: a third party's word (see the module doc)."""
    return stored.event.provenance == "third_party"


def profile_id_for(identifier: str, source: str, message_id: str) -> str:
    return "p_" + _hash(identifier, source, message_id)


@dataclass(frozen=True, slots=True)
class Cause:
    """The event that caused something: its log position, key and time (ISO 8601)."""

    position: int
    source: str
    message_id: str
    at: str

    @staticmethod
    def of(stored: StoredEvent) -> Cause:
        e = stored.event
        return Cause(stored.position, e.source, e.message_id, iso(e.timestamp))

    def to_dict(self) -> dict[str, Any]:
        return {"position": self.position, "source": self.source, "message_id": self.message_id, "at": self.at}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Cause:
        return Cause(int(d["position"]), d["source"], d["message_id"], d["at"])


@dataclass(frozen=True, slots=True)
class Link:
    """The first event seen with one distinct set of identifiers (the anchor first)."""

    cause: Cause
    ids: tuple[str, ...]
    weak: bool = False
    """From a third-party event (see the module doc): re-run as weak when a cluster is rebuilt."""

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"cause": self.cause.to_dict(), "ids": list(self.ids)}
        if self.weak:
            d["weak"] = True
        return d

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Link:
        return Link(Cause.from_dict(d["cause"]), tuple(d["ids"]), bool(d.get("weak", False)))


@dataclass(frozen=True, slots=True)
class Merge:
    id: str
    survivor: str
    absorbed: str
    via: tuple[str, str]
    cause: Cause

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "survivor": self.survivor, "absorbed": self.absorbed, "via": list(self.via),
                "cause": self.cause.to_dict()}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Merge:
        return Merge(d["id"], d["survivor"], d["absorbed"], (d["via"][0], d["via"][1]), Cause.from_dict(d["cause"]))


@dataclass(slots=True)
class Conflict:
    """A link that was refused: ``reason`` is ``unique`` (two values of ``type``), ``unmerged``, ``third_party``
    (a third party's link between two clusters, not followed) or ``outranked`` (a weak member moved to the cluster
    of a stronger event naming it; ``identifiers`` are that event's anchor and the identifier)."""

    key: str
    reason: str
    identifiers: tuple[str, str]
    type: str
    values: tuple[str, str]
    cause: Cause
    count: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "reason": self.reason, "identifiers": list(self.identifiers), "type": self.type,
                "values": list(self.values), "cause": self.cause.to_dict(), "count": self.count}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Conflict:
        return Conflict(d["key"], d["reason"], (d["identifiers"][0], d["identifiers"][1]), d["type"],
                        (d["values"][0], d["values"][1]), Cause.from_dict(d["cause"]), int(d["count"]))


@dataclass(frozen=True, slots=True)
class Split:
    cause: Cause
    identifier: str | None
    merge_id: str | None
    profiles: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"cause": self.cause.to_dict(), "identifier": self.identifier, "merge_id": self.merge_id,
                "profiles": list(self.profiles)}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Split:
        return Split(Cause.from_dict(d["cause"]), d.get("identifier"), d.get("merge_id"), tuple(d["profiles"]))


@dataclass(eq=False, slots=True)
class Cluster:
    id: str
    founder: str
    founded: int
    identifiers: list[str] = field(default_factory=list)
    unique: dict[str, str] = field(default_factory=dict)
    links: list[Link] = field(default_factory=list)
    link_keys: set[tuple[tuple[str, ...], bool]] = field(default_factory=set)
    """(identifiers, weak) of every link: a strong link is recorded even when a weak one named the same."""
    merges: list[Merge] = field(default_factory=list)
    conflicts: dict[str, Conflict] = field(default_factory=dict)
    splits: list[Split] = field(default_factory=list)
    weak: set[str] = field(default_factory=set)
    """Members only a third-party event brought: they never link (see the module doc)."""

    def age(self) -> tuple[int, str]:
        return (self.founded, self.founder)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "founder": self.founder, "founded": self.founded,
            "identifiers": list(self.identifiers),
            "links": [lk.to_dict() for lk in self.links],
            "merges": [m.to_dict() for m in self.merges],
            "conflicts": [c.to_dict() for c in self.conflicts.values()],
            "splits": [s.to_dict() for s in self.splits],
            **({"weak": [i for i in self.identifiers if i in self.weak]} if self.weak else {}),
        }

    @staticmethod
    def from_dict(d: dict[str, Any], config: IdentityConfig) -> Cluster:
        c = Cluster(d["id"], d["founder"], int(d["founded"]), list(d["identifiers"]))
        for ident in c.identifiers:
            ty = identifier_type(ident)
            if config.is_unique(ty):
                c.unique.setdefault(ty, ident)
        c.links = [Link.from_dict(x) for x in d["links"]]
        c.link_keys = {(lk.ids, lk.weak) for lk in c.links}
        c.merges = [Merge.from_dict(x) for x in d["merges"]]
        c.conflicts = {x["key"]: Conflict.from_dict(x) for x in d["conflicts"]}
        c.splits = [Split.from_dict(x) for x in d["splits"]]
        c.weak = set(d.get("weak", ()))
        return c


@dataclass(frozen=True)
class Resolution:
    """What one event did to identity: the profile it belongs to, merges (survivor, absorbed) and a split
    (old profile id → the profiles it became, the old id among them when it survives)."""

    profile_id: str | None
    identifiers: tuple[str, ...] = ()
    merged: tuple[tuple[str, str], ...] = ()
    split: tuple[str, tuple[str, ...]] | None = None


class IdentityGraph:
    """The identity projection. Apply events in log order with :meth:`resolve`."""

    def __init__(self, config: IdentityConfig, *, separated: dict[str, set[str]] | None = None,
                 record_conflicts: bool = True) -> None:
        self.config = config
        self.clusters: dict[str, Cluster] = {}
        self._of: dict[str, Cluster] = {}
        self.separated: dict[str, set[str]] = {} if separated is None else separated
        self.redirects: dict[str, str] = {}
        self.merge_index: dict[str, str] = {}
        self._record_conflicts = record_conflicts
        self.changed: set[str] = set()
        """Ids of clusters created or changed since :meth:`take_changes`."""
        self.removed: set[str] = set()
        """Ids of clusters that ceased to exist (merged away, split) since :meth:`take_changes`."""

    def take_changes(self) -> tuple[set[str], set[str]]:
        """(changed, removed) cluster ids since the last call, for persisting incrementally; resets both."""
        changed = {c for c in self.changed if c in self.clusters}
        removed = {c for c in self.removed if c not in self.clusters}
        self.changed, self.removed = set(), set()
        return changed, removed

    # ---- queries ----
    def cluster_of(self, identifier: str) -> Cluster | None:
        return self._of.get(identifier)

    def profile_of(self, identifier: str) -> str | None:
        c = self._of.get(identifier)
        return c.id if c else None

    def current_id(self, profile_id: str) -> str | None:
        """The live id of a profile, following merge redirects; ``None`` when unknown."""
        seen = 0
        while profile_id not in self.clusters:
            nxt = self.redirects.get(profile_id)
            if nxt is None or seen > 10_000:
                return None
            profile_id, seen = nxt, seen + 1
        return profile_id

    def anchor_profile(self, identifiers: tuple[str, ...]) -> str | None:
        return self.profile_of(identifiers[0]) if identifiers else None

    # ---- the fold ----
    def resolve(self, stored: StoredEvent, ids: tuple[str, ...] | None = None) -> Resolution:
        """Apply one event (``ids``: its identifiers when the caller computed them already)."""
        ev = stored.event
        if ev.kind == UNMERGE:
            return self._unmerge(stored)
        if ids is None:
            ids = identifiers_of(ev, self.config)
        if not ids:
            return Resolution(None)
        cluster, merged = self._link(ids, Cause.of(stored), is_weak(stored))
        return Resolution(cluster.id, ids, tuple(merged))

    def _found(self, ident: str, cause: Cause) -> Cluster:
        c = Cluster(profile_id_for(ident, cause.source, cause.message_id), ident, cause.position, [ident])
        ty = identifier_type(ident)
        if self.config.is_unique(ty):
            c.unique[ty] = ident
        self.clusters[c.id] = c
        self.redirects.pop(c.id, None)
        self._of[ident] = c
        self.changed.add(c.id)
        return c

    def _link(self, ids: tuple[str, ...], cause: Cause,
              weak: bool = False) -> tuple[Cluster, list[tuple[str, str]]]:
        if weak:
            return self._link_weak(ids, cause), []
        merged: list[tuple[str, str]] = []
        anchor = ids[0]
        c = self._of.get(anchor)
        if c is None:
            # A new anchor joins the first cluster among the event's other identifiers that admits it (a weak
            # member is no way in: this event takes it instead, below).
            for ident in ids[1:]:
                d = self._of.get(ident)
                if d is not None and ident not in d.weak and self._blocker_new(d, anchor) is None:
                    self._add(d, anchor)
                    c = d
                    break
            else:
                c = self._found(anchor, cause)
        elif anchor in c.weak:
            self._promote(c, anchor)
        for ident in ids[1:]:
            d = self._of.get(ident)
            if d is c:
                if ident in c.weak:
                    self._promote(c, ident)
                continue
            if d is None:
                blocker = self._blocker_new(c, ident)
                if blocker is None:
                    self._add(c, ident)
                    continue
                d = self._found(ident, cause)
                self._record_link(d, (ident,), cause)
                self._conflict(c, d, anchor, ident, blocker, cause)
                continue
            if ident in d.weak:
                if self._blocker_new(c, ident) is None:
                    self._take(d, c, anchor, ident, cause)
                continue
            blocker = self._blocker(c, d)
            if blocker is not None:
                self._conflict(c, d, anchor, ident, blocker, cause)
                continue
            survivor, absorbed = self._merge(c, d, (anchor, ident), cause)
            merged.append((survivor, absorbed))
            c = self._of[anchor]
        self._record_link(c, ids, cause)
        return c, merged

    def _link_weak(self, ids: tuple[str, ...], cause: Cause) -> Cluster:
        """A third-party event: its anchor's cluster (or a new one) gains the identifiers nobody has yet, as weak
        members; links to other clusters are recorded as conflicts, not followed."""
        anchor = ids[0]
        c = self._of.get(anchor)
        if c is None:
            c = self._found(anchor, cause)
        for ident in ids[1:]:
            d = self._of.get(ident)
            if d is c:
                continue
            if d is None:
                if self.config.is_unique(identifier_type(ident)):
                    continue  # a third party never names anyone's CRM id, user id, ...
                if self._blocker_new(c, ident) is None:
                    self._add(c, ident)
                    c.weak.add(ident)
                else:  # separated from the anchor by an unmerge: on its own, as a strong link would have it
                    d = self._found(ident, cause)
                    d.links.append(Link(cause, (ident,), True))
                    d.link_keys.add(((ident,), True))
                continue
            self._conflict(c, d, anchor, ident, ("third_party", identifier_type(ident), anchor,
                                                 split_identifier(anchor)[1], split_identifier(ident)[1]), cause)
        if (ids, True) not in c.link_keys:
            c.link_keys.add((ids, True))
            c.links.append(Link(cause, ids, True))
            self.changed.add(c.id)
        return c

    def _promote(self, c: Cluster, ident: str) -> None:
        """A stronger event names a weak member of its own cluster: it is the cluster's own now."""
        c.weak.discard(ident)
        self.changed.add(c.id)

    def _take(self, d: Cluster, c: Cluster, anchor: str, ident: str, cause: Cause) -> None:
        """A stronger event names ``ident``, a weak member of ``d``: it moves to ``c`` (a weak member is a leaf,
        so ``d`` stays whole) and both clusters record it."""
        d.identifiers.remove(ident)
        d.weak.discard(ident)
        self.changed.add(d.id)
        self._add(c, ident)
        self._conflict(c, d, anchor, ident, ("outranked", identifier_type(ident), anchor,
                                             split_identifier(anchor)[1], split_identifier(ident)[1]), cause)

    def _record_link(self, c: Cluster, ids: tuple[str, ...], cause: Cause) -> None:  # a strong link
        if (ids, False) not in c.link_keys:
            c.link_keys.add((ids, False))
            c.links.append(Link(cause, ids))
            self.changed.add(c.id)

    def _add(self, c: Cluster, ident: str) -> None:
        c.identifiers.append(ident)
        ty = identifier_type(ident)
        if self.config.is_unique(ty):
            c.unique[ty] = ident
        self._of[ident] = c
        self.changed.add(c.id)

    def _blocker_new(self, c: Cluster, ident: str) -> tuple[str, str, str, str, str] | None:
        """(reason, type, member of c, value of c, value of ident) when ``ident`` may not join ``c``."""
        ty = identifier_type(ident)
        if self.config.is_unique(ty) and ty in c.unique:
            have = c.unique[ty]
            return ("unique", ty, have, split_identifier(have)[1], split_identifier(ident)[1])
        blocking = [o for o in self.separated.get(ident, ()) if self._of.get(o) is c]
        if blocking:
            other = min(blocking)  # sets iterate in hash order: pick deterministically
            return ("unmerged", "", other, other, ident)
        return None

    def _blocker(self, c: Cluster, d: Cluster) -> tuple[str, str, str, str, str] | None:
        for ty, have in c.unique.items():
            theirs = d.unique.get(ty)
            if theirs is not None and theirs != have:
                return ("unique", ty, have, split_identifier(have)[1], split_identifier(theirs)[1])
        small, big = (c, d) if len(c.identifiers) <= len(d.identifiers) else (d, c)
        for ident in small.identifiers:
            blocking = [o for o in self.separated.get(ident, ()) if self._of.get(o) is big]
            if blocking:
                other = min(blocking)  # sets iterate in hash order: pick deterministically
                return ("unmerged", "", ident, ident, other)
        return None

    def _conflict(self, c: Cluster, d: Cluster, a: str, b: str, blocker: tuple[str, str, str, str, str],
                  cause: Cause) -> None:
        if not self._record_conflicts:
            return
        reason, ty, _, va, vb = blocker
        key = "cf_" + _hash(*sorted((a, b)), reason)
        for cl in (c, d):
            self.changed.add(cl.id)
            existing = cl.conflicts.get(key)
            if existing is None:
                cl.conflicts[key] = Conflict(key, reason, (a, b), ty, (va, vb), cause)
            else:
                existing.count += 1

    def _point(self, c: Cluster) -> None:
        """Redirect every id this cluster absorbed (and that is not live again) straight to it."""
        for m in c.merges:
            if m.absorbed not in self.clusters:
                self.redirects[m.absorbed] = c.id

    def _merge(self, c: Cluster, d: Cluster, via: tuple[str, str], cause: Cause) -> tuple[str, str]:
        older, newer = (c, d) if c.age() <= d.age() else (d, c)
        survivor_id, absorbed_id = older.id, newer.id
        moved = [m.absorbed for m in newer.merges]
        big, small = (c, d) if len(c.identifiers) >= len(d.identifiers) else (d, c)
        for ident in small.identifiers:
            self._of[ident] = big
        big.identifiers.extend(small.identifiers)
        big.weak |= small.weak
        for ty, ident in small.unique.items():
            big.unique.setdefault(ty, ident)
        big.links = list(heapq.merge(big.links, small.links, key=lambda lk: lk.cause.position))
        big.link_keys |= small.link_keys
        m = Merge("mrg_" + _hash(cause.source, cause.message_id, *via), survivor_id,
                  absorbed_id, via, cause)
        big.merges = sorted([*big.merges, *small.merges, m], key=lambda x: x.cause.position)
        for key, cf in small.conflicts.items():
            if key in big.conflicts:
                big.conflicts[key].count = max(big.conflicts[key].count, cf.count)
            else:
                big.conflicts[key] = cf
        big.splits = sorted([*big.splits, *small.splits], key=lambda s: s.cause.position)
        big.id, big.founder, big.founded = older.id, older.founder, older.founded
        del self.clusters[absorbed_id]
        self.clusters[survivor_id] = big
        self.removed.add(absorbed_id)
        self.changed.add(survivor_id)
        for old_id in (*moved, absorbed_id):
            if old_id not in self.clusters:
                self.redirects[old_id] = survivor_id
        self.merge_index[m.id] = via[0]
        return survivor_id, absorbed_id

    # ---- unmerge ----
    def _unmerge(self, stored: StoredEvent) -> Resolution:
        props = stored.event.properties
        cause = Cause.of(stored)
        raw_ident = props.get("identifier")
        merge_id = props.get("merge_id")
        if isinstance(raw_ident, str):
            ident = self._normal(raw_ident)
            c = self._of.get(ident) if ident else None
            if c is None or ident is None or len(c.identifiers) < 2:
                return Resolution(None)
            others = [i for i in c.identifiers if i != ident]
            self.separated.setdefault(ident, set()).update(others)
            for o in others:
                self.separated.setdefault(o, set()).add(ident)
            return self._rebuild(c, cause, split_off=ident, merge_id=None)
        if isinstance(merge_id, str):
            a = self.merge_index.get(merge_id)
            c = self._of.get(a) if a else None
            merge = next((m for m in c.merges if m.id == merge_id), None) if c else None
            if c is None or merge is None:
                return Resolution(None)
            side_a, side_b = self._sides_before(c, merge)
            for x in side_a:
                self.separated.setdefault(x, set()).update(side_b)
            for y in side_b:
                self.separated.setdefault(y, set()).update(side_a)
            return self._rebuild(c, cause, split_off=None, merge_id=merge_id)
        return Resolution(None)

    def _normal(self, text: str) -> str | None:
        type_name, _, value = text.partition(":")
        if type_name not in self.config.types:
            return None
        from takt.identity.identifiers import make_identifier

        return make_identifier(type_name, value, self.config)

    def _sides_before(self, c: Cluster, merge: Merge) -> tuple[set[str], set[str]]:
        """The members of the two clusters the merge joined, re-run up to the merge without it."""
        a, b = merge.via
        sep = {k: set(v) for k, v in self.separated.items()}
        sep.setdefault(a, set()).add(b)
        sep.setdefault(b, set()).add(a)
        tmp = IdentityGraph(self.config, separated=sep, record_conflicts=False)
        members = set(c.identifiers)
        for lk in c.links:
            if lk.cause.position > merge.cause.position:
                break
            ids = tuple(i for i in lk.ids if i in members)
            if ids:
                tmp._link(ids, lk.cause, lk.weak)
        ca, cb = tmp._of.get(a), tmp._of.get(b)
        return (set(ca.identifiers) if ca else {a}), (set(cb.identifiers) if cb else {b})

    def _rebuild(self, c: Cluster, cause: Cause, split_off: str | None, merge_id: str | None) -> Resolution:
        members = set(c.identifiers)
        tmp = IdentityGraph(self.config, separated=self.separated, record_conflicts=False)
        for lk in c.links:
            ids = tuple(i for i in lk.ids if i in members)
            if ids:
                tmp._link(ids, lk.cause, lk.weak)
        parts = sorted(tmp.clusters.values(), key=Cluster.age)
        rename: dict[str, str] = {}
        keeper = next((p for p in parts if c.founder in p.identifiers and p.founder != split_off), None)
        if keeper is None or (split_off is not None and split_off in keeper.identifiers):
            keeper = next((p for p in parts if split_off not in p.identifiers), None)
        taken = {cid for cid in self.clusters if cid != c.id}
        for p in parts:
            if p is keeper:
                new_id = c.id
            elif split_off is not None and split_off in p.identifiers:
                new_id = "p_" + _hash("split", split_off, cause.source, cause.message_id)
            else:
                new_id = p.id
            # A re-derived founding id may belong to a live profile already (it kept it in an earlier split).
            while new_id in taken:
                new_id = "p_" + _hash(new_id, "split", cause.source, cause.message_id)
            taken.add(new_id)
            rename[p.id] = new_id
        del self.clusters[c.id]
        self.removed.add(c.id)
        for m in c.merges:
            self.redirects.pop(m.absorbed, None)
        new_ids = tuple(rename[p.id] for p in parts)
        split = Split(cause, split_off, merge_id, new_ids)
        old_conflicts = list(c.conflicts.values())
        for p in parts:
            p.id = rename[p.id]
            p.merges = [Merge(m.id, rename.get(m.survivor, m.survivor), rename.get(m.absorbed, m.absorbed),
                              m.via, m.cause) for m in p.merges]
            for m in p.merges:
                self.merge_index[m.id] = m.via[0]
            pm = set(p.identifiers)
            p.conflicts = {cf.key: replace(cf) for cf in old_conflicts if pm & set(cf.identifiers)}
            p.splits = [*c.splits, split]
            self.clusters[p.id] = p
            self.changed.add(p.id)
            self.redirects.pop(p.id, None)
            for ident in p.identifiers:
                self._of[ident] = p
        for p in parts:
            self._point(p)
        return Resolution(None, split=(c.id, new_ids))

    # ---- snapshots ----
    def record(self, profile_id: str) -> dict[str, Any]:
        """One cluster as a self-contained JSON-able row (with its members' separations): what a table keyed
        by profile id stores. :meth:`from_records` rebuilds the graph from all rows."""
        c = self.clusters[profile_id]
        rec = c.to_dict()
        rec["separated"] = {i: sorted(self.separated[i]) for i in c.identifiers if self.separated.get(i)}
        return rec

    @staticmethod
    def from_records(records: list[dict[str, Any]], config: IdentityConfig) -> IdentityGraph:
        """The graph from per-cluster rows (:meth:`record`); redirects point straight at the survivor."""
        g = IdentityGraph(config)
        for rec in records:
            c = Cluster.from_dict(rec, config)
            g.clusters[c.id] = c
            for ident in c.identifiers:
                g._of[ident] = c
            for ident, others in rec.get("separated", {}).items():
                g.separated.setdefault(ident, set()).update(others)
        for c in g.clusters.values():
            for m in c.merges:
                g.merge_index[m.id] = m.via[0]
                if m.absorbed not in g.clusters:
                    g.redirects[m.absorbed] = c.id
        return g

    def snapshot(self) -> dict[str, Any]:
        """The whole state as JSON-able dicts (for per-profile rows see :meth:`record`)."""
        return {
            "clusters": [self.clusters[cid].to_dict() for cid in sorted(self.clusters)],
            "separated": {k: sorted(v) for k, v in sorted(self.separated.items())},
            "redirects": dict(sorted(self.redirects.items())),
            "merge_index": dict(sorted(self.merge_index.items())),
        }

    @staticmethod
    def restore(data: dict[str, Any], config: IdentityConfig) -> IdentityGraph:
        g = IdentityGraph(config)
        for cd in data["clusters"]:
            c = Cluster.from_dict(cd, config)
            g.clusters[c.id] = c
            for ident in c.identifiers:
                g._of[ident] = c
        g.separated = {k: set(v) for k, v in data["separated"].items()}
        g.redirects = dict(data["redirects"])
        g.merge_index = dict(data["merge_index"])
        return g
