"""What the orchestrator reads of one person, from the published state of the profile runner: the policy facts
``decide`` needs (with the suppression list as it is at this moment), the template context, the identifier an
event carries to land in the person's profile, and a segment condition evaluated for that person alone."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache
from typing import Any

from takt.errors import TaktError
from takt.policy import folded
from takt.policy.from_profile import PersonFacts, facts_from_state, person_from_profile, with_suppression
from takt.policy.suppression_store import suppression_entries
from takt.profiles.state import ProfileState
from takt.segments import ast as a
from takt.segments.evaluate import evaluate
from takt.segments.parser import parse
from takt.segments.view import EventRow


@lru_cache(maxsize=256)
def condition(expression: str) -> a.Condition:
    """A parsed segment expression (a :class:`~takt.segments.errors.SegmentError` when it is invalid)."""
    return parse(expression)


class People:
    def __init__(self, storage: Any, runner: Any) -> None:
        self.storage = storage
        self.runner = runner

    def prefetch(self, profile_ids: list[str]) -> None:
        """Read these people's states and identity clusters into the projector's caches in one query each
        (before reading them one by one); only those not published already."""
        missing = [pid for pid in profile_ids if self.runner.published.entry(pid) is None]
        if not missing:
            return
        with self.runner.lock:
            p = self.runner.projector
            p.prefetch(missing)
            load = _cluster_loader(p)
            if load is not None:
                load(missing)

    def prefetch_identity(self, profile_ids: list[str]) -> None:
        """Read these people's identity clusters into the cache in batches (what :meth:`link` reads)."""
        with self.runner.lock:
            load = _cluster_loader(self.runner.projector)
            if load is not None:
                for i in range(0, len(profile_ids), 2_000):
                    load(profile_ids[i:i + 2_000])

    def state(self, profile_id: str) -> ProfileState | None:
        entry = self.runner.entry(profile_id)
        return entry.state if entry is not None else None

    def facts(self, state: ProfileState) -> PersonFacts:
        def lookup(points: Any) -> Any:
            return suppression_entries(self.storage, points)

        if folded.exact(state):
            base = facts_from_state(state)
            return with_suppression(base, lookup) if base.person.contact_points else base
        events = self.runner.storage.log.get(sorted(set(state.positions))) if len(state.positions) else []
        return person_from_profile(state, events, self.runner.config.identity, lookup)

    def facts_many(self, states: Iterable[ProfileState]) -> dict[str, PersonFacts]:
        """:meth:`facts` of many people with one look-up of the suppression list for all their contact points."""
        base: dict[str, PersonFacts] = {}
        reread: list[ProfileState] = []
        for state in states:
            if folded.exact(state):
                base[state.id] = facts_from_state(state)
            else:
                reread.append(state)
        points = {(cp.kind, cp.value): cp for f in base.values() for cp in f.person.contact_points}
        entries: dict[tuple[str, str], list[Any]] = {}
        for cp, e in suppression_entries(self.storage, points.values()):
            entries.setdefault((cp.kind, cp.value), []).append((cp, e))

        def lookup(pts: Any) -> Any:
            return [x for cp in pts for x in entries.get((cp.kind, cp.value), [])]

        out = {pid: with_suppression(f, lookup) if f.person.contact_points else f for pid, f in base.items()}
        out.update({s.id: self.facts(s) for s in reread})
        return out

    def context(self, state: ProfileState) -> dict[str, Any]:
        """What templates see: ``traits`` (values), ``interests`` (decayed-score maps), ``profile_id``."""
        traits = {k: (v.get("value") if isinstance(v, dict) else v) for k, v in state.traits.items()}
        return {"profile_id": state.id, "traits": traits,
                "interests": {k: dict(v) if isinstance(v, dict) else v for k, v in state.interests.items()}}

    def link(self, state: ProfileState) -> dict[str, Any]:
        """Event fields that make identity put an event in this person's profile (``user_id``, else
        ``anonymous_id``, else the identifier under its trait name)."""
        config = self.runner.config.identity
        with self.runner.lock:
            identity = self.runner.projector.identity
            cluster = identity.clusters.get(state.id)
            owned = [i for i in (cluster.identifiers if cluster else ()) if identity.profile_of(i) == state.id]
        prio = config.priority
        for ident in sorted(owned, key=lambda i: (not i.startswith("user_id:"), prio.get(i.partition(":")[0], 99))):
            type_name, _, value = ident.partition(":")
            if type_name == "user_id":
                return {"user_id": value}
            if type_name == "anonymous_id":
                return {"anonymous_id": value}
            t = config.types.get(type_name)
            if t is not None and t.traits:
                return {"traits": {t.traits[0]: value}}
        raise TaktError(f"profile {state.id} has no identifier an event can carry", code="unlinkable", status=409)

    def matches(self, state: ProfileState, expression: str, now: datetime) -> bool:
        """Whether the person matches the segment expression at ``now`` (the live evaluator over the person's
        view, with their events)."""
        from takt.projections.tables import profile_view

        tree = condition(expression)
        rows: Iterable[EventRow] = ()
        if len(state.positions):
            rows = [EventRow(s.event.kind, s.event.timestamp, event=s.event.event, name=s.event.name,
                             properties=s.event.properties)
                    for s in self.runner.storage.log.get(sorted(set(state.positions)))]
        return evaluate(tree, profile_view(state, rows, self.runner.config), now)


def _cluster_loader(projector: Any) -> Any:
    """The identity store's batch read of clusters (``None`` when identity is all in memory)."""
    backing = getattr(projector.identity.clusters, "backing", None)
    return getattr(backing, "load_clusters", None)
