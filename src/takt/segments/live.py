"""Live segment membership: who is in each segment right now, kept current as profiles change and as time passes.

:class:`LiveSegments` is a listener of the profile runner (:class:`takt.projections.runner.ProfileRunner`):

- after each folded chunk it re-evaluates the changed profiles (``on_changes``) with the live evaluator
  (:func:`takt.segments.evaluate.evaluate`) at the runner's clock, and returns a ``segment_entered`` or
  ``segment_exited`` event for every change of membership; the runner's leader appends them to the log, so
  campaigns can trigger on them;
- about once a second (``on_tick``) it processes a priority queue of the instants at which a membership flips
  with time alone (:func:`takt.segments.evaluate.next_change`: a purchase leaving "in last 30d" on day 31, an
  interest decaying below a threshold), each evaluated *at* its instant, so the events and their ids do not
  depend on how often ticks happen; it also picks up new, changed and deleted definitions.

Definitions come from a provider: a callable returning ``{name: (version, tree)}`` (the stored segments, or the
``segments.live`` setting). ``in segment("x")`` references are resolved through the same definitions; a change
of a referenced segment re-evaluates the segments that use it. Computed traits
(:mod:`takt.segments.computed`) are added to each profile's view before evaluation.

**A projection of the log.** Membership is what the log's ``segment_entered``/``segment_exited`` events say:
at start the state is restored from its snapshot and the log after it is read for those events, so a restart or
a rebuild of the profiles does not announce anyone twice. While the runner catches up on a backlog, changed
profiles are only noted and evaluated once it has caught up, so replaying old events never produces transient
exits and entries. Every derived event has a deterministic messageId computed from (kind, segment, version,
profile, cause) — the cause being the profile's latest event, the flip instant, or the definition — so a replay
that derives it again is stored once (the log is idempotent on ``(source, messageId)``).
"""

from __future__ import annotations

import hashlib
import heapq
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from takt import settings as settings_mod
from takt.errors import TaktError
from takt.events.model import Event, StoredEvent, parse_time, register_kind
from takt.identity.extract import NO_IDENTITY_KINDS
from takt.segments import ast as a
from takt.segments.computed import ComputedTrait, with_computed
from takt.segments.evaluate import _candidates, _Eval, evaluate
from takt.segments.functions import FUNCTIONS, FunctionRegistry
from takt.segments.json_form import to_json
from takt.segments.resolve import resolve
from takt.segments.semantics import shift
from takt.segments.view import EventRow, ProfileView
from takt.services import attached_services, services_of

if TYPE_CHECKING:
    from takt.profiles.state import ProfileState
    from takt.projections.runner import ProfileRunner
    from takt.settings import Settings

SEGMENT_ENTERED = register_kind(
    "segment_entered",
    "Derived by live segment membership: a profile entered a segment. properties: profile_id, segment, version, "
    "at, cause ({position, source, message_id} of the profile's latest event, {time} for a change with time "
    "alone, or {definition})."
)
SEGMENT_EXITED = register_kind(
    "segment_exited",
    "Derived by live segment membership: a profile left a segment. properties: profile_id, segment, version, at, "
    "cause (as for segment_entered; {dropped, position} when the profile merged into another or was split).",
)
SEGMENT_KINDS = frozenset({SEGMENT_ENTERED, SEGMENT_EXITED})
NO_IDENTITY_KINDS.update(SEGMENT_KINDS)
LIVE_SOURCE = "takt.segments"
SNAPSHOT_NAME = "segments.live"
SNAPSHOT_VERSION = 1

Definitions = Mapping[str, tuple[int, a.Condition]]
"""Segment name → (version, tree)."""
SegmentProvider = Callable[[], Definitions]
ComputedProvider = Callable[[], Sequence[ComputedTrait]]

settings_mod.register(
    "segments.live", {},
    "Segments kept live without the segment store: a table of name = definition (segment language). Members get "
    "segment_entered / segment_exited events in the log (docs/segments-live.md).",
    kind="table",
)
settings_mod.register(
    "segments.live_snapshot_seconds", 60.0,
    "How often (at most) live segment membership saves its snapshot, so a restart reads only the log after it.",
)


def message_id(kind: str, segment: str, version: int, profile_id: str, cause: Mapping[str, Any]) -> str:
    """The deterministic messageId of a membership event: the same transition derives the same id."""
    key = "\x1f".join((kind, segment, str(version), profile_id, orjson.dumps(cause, option=orjson.OPT_SORT_KEYS)
                       .decode()))
    return f"takt-{kind}-{hashlib.sha256(key.encode()).hexdigest()[:32]}"


def membership_event(kind: str, segment: str, version: int, profile_id: str, at: datetime,
                     cause: Mapping[str, Any]) -> Event:
    return Event(
        kind=kind,
        message_id=message_id(kind, segment, version, profile_id, cause),
        source=LIVE_SOURCE,
        timestamp=at,
        received_at=at,
        provenance="observed",
        properties={"profile_id": profile_id, "segment": segment, "version": version,
                    "at": at.isoformat(), "cause": dict(cause)},
        context={"derived": True},
    )


def event_row(stored: StoredEvent) -> EventRow:
    """A log event as a row of ``profile_events`` (what the SQL reads)."""
    ev = stored.event
    return EventRow(ev.kind, ev.timestamp, event=ev.event, name=ev.name, properties=ev.properties)


class _Def:
    __slots__ = ("fingerprint", "name", "needs_events", "resolved", "version")

    def __init__(self, name: str, version: int, resolved: a.Condition):
        self.name = name
        self.version = version
        self.resolved = resolved
        self.fingerprint = hashlib.sha256(orjson.dumps(to_json(resolved))).hexdigest()[:16]
        self.needs_events = any(isinstance(a.operand_of(c), a.Aggregate) for c in a.walk(resolved))


Cause = Callable[["ProfileState", _Def], Mapping[str, Any]]
"""Why a membership changed, for one profile and segment (goes into the event and its id)."""


class LiveSegments:
    """Membership of every provided segment, as a runner listener. Thread-safety: the runner calls it under its
    lock; :meth:`members` and :meth:`segments_of` take the runner's lock when attached."""

    def __init__(self, provider: SegmentProvider, *, computed: ComputedProvider | None = None,
                 functions: FunctionRegistry | None = None, snapshot_every_s: float = 60.0,
                 lag_tolerance: int = 5_000, refresh_every_s: float = 1.0):
        self.provider = provider
        self.computed_provider = computed
        self.functions = functions or FUNCTIONS
        self.snapshot_every_s = snapshot_every_s
        self.lag_tolerance = lag_tolerance
        self.refresh_every_s = refresh_every_s
        self._last_refresh = float("-inf")
        self._signature: Any = None
        self._needs_events = True
        self._refreshed = False
        self.runner: ProfileRunner | None = None
        self.defs: dict[str, _Def] = {}
        self.computed: list[ComputedTrait] = []
        self.state: dict[str, dict[str, int]] = {}
        """segment → {profile_id: version it entered with}."""
        self.seen_fingerprints: dict[str, str] = {}
        self._due: dict[tuple[str, str], datetime] = {}
        self._heap: list[tuple[datetime, str, str]] = []
        self._pending: set[str] = set()
        self._prefetched: dict[int, StoredEvent] | None = None
        self._primed = False
        self._checked = float("-inf")
        self._dirty = False
        self._last_saved = time.monotonic()

    # ---------------------------------------------------------------- reads
    def members(self, segment: str) -> set[str]:
        with self._locked():
            return set(self.state.get(segment, {}))

    def segments_of(self, profile_id: str) -> list[str]:
        with self._locked():
            return sorted(s for s, m in self.state.items() if profile_id in m)

    def computed_values(self, profile_id: str, now: datetime) -> dict[str, Any] | None:
        """The computed traits of one profile at ``now`` (``None`` when there are none or no runner)."""
        runner = self.runner
        if runner is None or not self.computed:
            return None
        from takt.segments.computed import compute_all

        with runner.lock:
            state = runner.projector.profile(profile_id)
            if state is None:
                return None
            view = self._base_view(runner, state, events=True)
        return compute_all(self.computed, view, now)

    def _locked(self) -> Any:
        import contextlib

        return self.runner.lock if self.runner is not None else contextlib.nullcontext()

    # ---------------------------------------------------------------- listener
    def caught_up(self, runner: ProfileRunner) -> bool:
        """Whether the runner is near the log's head (within ``lag_tolerance`` events): while it replays a
        backlog, profiles are only noted, so old partial states are never announced."""
        return runner.storage.log.head() - runner.position <= self.lag_tolerance

    def on_changes(self, runner: ProfileRunner, touched: list[str], dropped: list[str]) -> list[Event]:
        if not self._ensure(runner):
            return []
        out: list[Event] = []
        for pid in dropped:
            out.extend(self._drop(pid, runner))
        self._pending.update(touched)
        self._pending.difference_update(dropped)
        if self._pending and self.caught_up(runner):
            now = runner.clock()
            if not self._refreshed:
                out.extend(self.refresh(runner, now))
            out.extend(self._flush(runner, now))
        return out

    def on_tick(self, runner: ProfileRunner, now: datetime) -> list[Event]:
        if not self._ensure(runner) or not self.caught_up(runner):
            return []
        out: list[Event] = []
        if time.monotonic() - self._last_refresh >= self.refresh_every_s:
            out.extend(self.refresh(runner, now))
        if self._pending:
            out.extend(self._flush(runner, now))
        out.extend(self._expire(runner, now))
        if self._dirty and time.monotonic() - self._last_saved >= self.snapshot_every_s:
            self.save(runner)
        return out

    # ---------------------------------------------------------------- definitions
    def refresh(self, runner: ProfileRunner, now: datetime) -> list[Event]:
        """Read the definitions again; evaluate every profile for new or changed ones, and let the members of
        deleted ones exit."""
        self._last_refresh = time.monotonic()
        raw = dict(self.provider())
        self.computed = list(self.computed_provider()) if self.computed_provider is not None else []
        signature = ({name: (version, id(tree)) for name, (version, tree) in raw.items()},
                     tuple(id(c) for c in self.computed))
        if signature == self._signature and self._refreshed:
            return []  # nothing changed (the common case, checked about once a second)
        self._signature = signature
        lookup = {name: tree for name, (_, tree) in raw.items()}
        defs = {name: _Def(name, version, resolve(tree, lookup)) for name, (version, tree) in raw.items()}
        out: list[Event] = []
        for name in sorted(set(self.state) - set(defs)):
            old = self.state.pop(name)
            version = max(old.values(), default=0)
            for pid in sorted(old):
                out.append(membership_event(SEGMENT_EXITED, name, old[pid], pid, now,
                                            {"deleted": True, "version": version}))
            self.seen_fingerprints.pop(name, None)
            self._dirty = True
        changed = [d for name, d in sorted(defs.items()) if self.seen_fingerprints.get(name) != d.fingerprint]
        self.defs = defs
        self._refreshed = True
        self._needs_events = bool(self.computed) or any(d.needs_events for d in defs.values())
        if changed:
            for d in changed:
                self.state.setdefault(d.name, {})
            out.extend(self._evaluate_all(runner, runner.projector.profiles(), now, changed, _definition_cause))
            for d in changed:
                self.seen_fingerprints[d.name] = d.fingerprint
            if len(changed) == len(defs):
                self._pending.clear()  # every profile was just evaluated for every segment
            self._dirty = True
        return out

    # ---------------------------------------------------------------- evaluation
    def _view(self, runner: ProfileRunner, state: ProfileState, now: datetime) -> ProfileView:
        view = self._base_view(runner, state, events=self._needs_events)
        return with_computed(self.computed, view, now) if self.computed else view

    def _base_view(self, runner: ProfileRunner, state: ProfileState, *, events: bool) -> ProfileView:
        from takt.projections.tables import profile_view

        rows: Iterable[EventRow] = ()
        if events and len(state.positions):
            pre = self._prefetched
            if pre is not None and all(p in pre for p in state.positions):
                rows = [event_row(pre[p]) for p in state.positions]
            else:
                rows = [event_row(s) for s in runner.projector.events.get(state.positions)]
        return profile_view(state, rows, runner.config)

    def _evaluate_all(self, runner: ProfileRunner, pids: Sequence[str], now: datetime, defs: list[_Def],
                      cause_of: Cause, batch: int = 1_000) -> list[Event]:
        """Evaluate many profiles, reading their events from the log in one query per batch (not one read per
        profile)."""
        out: list[Event] = []
        for i in range(0, len(pids), batch):
            states = [s for s in (runner.projector.profile(pid) for pid in pids[i:i + batch]) if s is not None]
            if self._needs_events:
                wanted = sorted({int(p) for s in states for p in s.positions})
                self._prefetched = {s.position: s for s in runner.storage.log.get(wanted)} if wanted else {}
            try:
                for state in states:
                    out.extend(self._evaluate(runner, state, now, defs, cause_of))
            finally:
                self._prefetched = None
        return out

    def _evaluate(self, runner: ProfileRunner, state: ProfileState, now: datetime, defs: Iterable[_Def],
                  cause_of: Cause, at: datetime | None = None) -> list[Event]:
        view = self._view(runner, state, now)
        out: list[Event] = []
        pid = state.id
        for d in defs:
            member = evaluate(d.resolved, view, now, functions=self.functions)
            seg = self.state.setdefault(d.name, {})
            was = pid in seg
            if member != was:
                cause = cause_of(state, d)
                if member:
                    seg[pid] = d.version
                    out.append(membership_event(SEGMENT_ENTERED, d.name, d.version, pid, at or now, cause))
                else:
                    version = seg.pop(pid)
                    out.append(membership_event(SEGMENT_EXITED, d.name, version if version else d.version, pid,
                                                at or now, cause))
                self._dirty = True
            self._schedule(d, pid, state, view, now, runner)
        return out

    def _schedule(self, d: _Def, pid: str, state: ProfileState, view: ProfileView, now: datetime,
                  runner: ProfileRunner) -> None:
        t = self._next_change(d, state, view, now, runner)
        key = (d.name, pid)
        if t is None:
            self._due.pop(key, None)
            return
        if self._due.get(key) != t:
            self._due[key] = t
            heapq.heappush(self._heap, (t, d.name, pid))
            self._dirty = True

    def _next_change(self, d: _Def, state: ProfileState, view: ProfileView, now: datetime,
                     runner: ProfileRunner) -> datetime | None:
        """Like :func:`next_change`, with computed traits recomputed at each candidate instant."""
        ev = _Eval(view, now, self.functions)
        current = ev.cond(d.resolved)
        cands: set[datetime] = set()
        _candidates(d.resolved, ev, cands)
        base: ProfileView | None = None
        if self.computed:
            base = self._base_view(runner, state, events=True)
            for c in self.computed:
                span = c.window.duration.seconds if isinstance(c.window, a.LastWindow) else None
                for e in _Eval(base, now, self.functions).matching(c.aggregate, windowed=False):
                    cands.add(e.ts)
                    if span is not None:
                        cands.add(shift(e.ts, span))
        for t in sorted(c for c in cands if c > now):
            v = with_computed(self.computed, base, t) if base is not None else view
            if _Eval(v, t, self.functions).cond(d.resolved) != current:
                return t
        return None

    def _flush(self, runner: ProfileRunner, now: datetime) -> list[Event]:
        pids = sorted(self._pending)
        self._pending.clear()
        out: list[Event] = []
        defs = list(self.defs.values())
        if not defs:
            return out
        if len(pids) > 50:  # after a catch-up: read the events in bulk
            return self._evaluate_all(runner, pids, now, defs, _latest_event_cause)
        for pid in pids:
            state = runner.projector.profile(pid)
            if state is None:
                continue
            out.extend(self._evaluate(runner, state, now, defs, _latest_event_cause))
        return out

    def _expire(self, runner: ProfileRunner, now: datetime) -> list[Event]:
        """Process the flips due by ``now``, each evaluated at its own instant (in time order)."""
        out: list[Event] = []
        while self._heap and self._heap[0][0] <= now:
            t, name, pid = heapq.heappop(self._heap)
            if self._due.get((name, pid)) != t:
                continue  # superseded by a later evaluation
            del self._due[(name, pid)]
            d = self.defs.get(name)
            state = runner.projector.profile(pid)
            if d is None or state is None:
                continue
            cause = {"time": t.isoformat()}
            out.extend(self._evaluate(runner, state, t, [d], _const(cause), at=t))
        return out

    def _drop(self, pid: str, runner: ProfileRunner) -> list[Event]:
        out = []
        for name, seg in sorted(self.state.items()):
            if pid in seg:
                version = seg.pop(pid)
                cause = {"dropped": pid, "position": runner.position}
                out.append(membership_event(SEGMENT_EXITED, name, version, pid, runner.clock(), cause))
                self._dirty = True
            self._due.pop((name, pid), None)
        return out

    def forget(self, profile_ids: Sequence[str]) -> None:
        """Drop erased profiles from every membership without announcing it (an exit event would name the
        erased profile in the log again); the state is saved at once."""
        gone = set(profile_ids)
        with self._locked():
            for seg in self.state.values():
                for pid in gone & seg.keys():
                    del seg[pid]
            for key in [k for k in self._due if k[1] in gone]:
                del self._due[key]
            self._heap = [h for h in self._heap if h[2] not in gone]
            heapq.heapify(self._heap)
            self._pending.difference_update(gone)
            if self.runner is not None and self._primed:
                self.save(self.runner)

    # ---------------------------------------------------------------- projection state
    def _ensure(self, runner: ProfileRunner) -> bool:
        """Prime on first use, once there is a segment to keep (a server without segments never reads the log
        for membership). Whether membership is running."""
        if self._primed:
            return True
        if time.monotonic() - self._checked < 1.0:
            return False
        self._checked = time.monotonic()
        if not self.provider():
            return False
        self.prime(runner)
        return True

    def prime(self, runner: ProfileRunner) -> None:
        """Restore the snapshot and apply the log's membership events after it; profiles the projection folded
        after the snapshot are evaluated once it has caught up."""
        self.runner = runner
        after = 0
        snap = runner.storage.snapshots.load(SNAPSHOT_NAME)
        if snap is not None:
            data = orjson.loads(snap[1])
            if data.get("version") == SNAPSHOT_VERSION:
                after = int(data["position"])
                self.state = {k: dict(v) for k, v in data["members"].items()}
                self.seen_fingerprints = dict(data["fingerprints"])
                for name, pid, t in data["due"]:
                    when = parse_time(t)
                    self._due[(name, pid)] = when
                    self._heap.append((when, name, pid))
                heapq.heapify(self._heap)
        for ev in _logged_membership(runner.storage, after):
            self.apply_logged(ev)
        if after < runner.position:
            # the projection folded events this state never saw: evaluate the profiles they changed
            for pid in self._changed_after(runner, after):
                state = runner.projector.profile(pid)
                if state is not None and len(state.positions) and int(state.positions[-1]) > after:
                    self._pending.add(pid)
        self._primed = True
        self._dirty = True

    @staticmethod
    def _changed_after(runner: ProfileRunner, after: int) -> list[str]:
        """The profiles that may have events after ``after``: with a profile store, those whose row was written
        after it (what the runner folded and has not written yet is written first), not every profile (which
        would read every stored state); without one (a follower's projection in memory), every profile."""
        if runner.projector.store is not None and runner.is_leader():
            if runner.projector.store.position() != runner.position:
                runner.save()
            store = runner.projector.store
            if store is not None:
                return store.changed_since(after)
        return runner.projector.profiles()

    def apply_logged(self, ev: Event) -> None:
        """Fold one logged event into the membership state (others are ignored)."""
        if ev.kind not in SEGMENT_KINDS:
            return
        p = ev.properties
        seg = self.state.setdefault(str(p["segment"]), {})
        if ev.kind == SEGMENT_ENTERED:
            seg[str(p["profile_id"])] = int(p.get("version") or 0)
        else:
            seg.pop(str(p["profile_id"]), None)

    def save(self, runner: ProfileRunner) -> None:
        """Save the membership state with the runner's position (leader only)."""
        if not runner.is_leader():
            return
        data = {
            "version": SNAPSHOT_VERSION,
            "position": runner.position,
            "members": self.state,
            "fingerprints": self.seen_fingerprints,
            "due": [[name, pid, t.isoformat()] for (name, pid), t in sorted(self._due.items())],
        }
        runner.storage.snapshots.save(SNAPSHOT_NAME, runner.position, orjson.dumps(data))
        self._dirty = False
        self._last_saved = time.monotonic()


def _const(cause: Mapping[str, Any]) -> Cause:
    return lambda _state, _d: cause


def _definition_cause(_state: ProfileState, d: _Def) -> dict[str, Any]:
    return {"definition": d.version, "fingerprint": d.fingerprint}


def _latest_event_cause(state: ProfileState, _d: _Def) -> dict[str, Any]:
    """The profile's latest event (its log position: the same on every replay of the log)."""
    return {"position": int(state.positions[-1]) if len(state.positions) else 0}


def _logged_membership(storage: Any, after: int) -> Iterable[Event]:
    """The membership events in the log after ``after``, in order (read through the log, which opens sealed
    payloads)."""
    return (s.event for s in storage.log.iter(after=after) if s.event.kind in SEGMENT_KINDS)


# ---------------------------------------------------------------- wiring (server, worker)
def store_provider(storage: Any, settings: Settings) -> SegmentProvider:
    """Definitions of the segment store (when the backend has one) and of the ``segments.live`` setting; a
    stored segment wins over a setting of the same name."""
    from takt.segments.parser import parse
    from takt.segments.store import segment_store

    configured = {name: (1, parse(text)) for name, text in sorted(settings["segments.live"].items())}
    try:
        store: Any = segment_store(storage)
    except TaktError:
        store = None

    trees: dict[tuple[str, int], a.Condition] = {}

    def provide() -> dict[str, tuple[int, a.Condition]]:
        out = dict(configured)
        if store is not None:
            for v in store.list():
                key = (v.name, v.version)
                if key not in trees:  # a version never changes: read its tree once
                    trees[key] = v.tree
                out[v.name] = (v.version, trees[key])
        return out

    return provide


def attach_live(storage: Any, runner: ProfileRunner, settings: Settings) -> LiveSegments:
    """Keep the stored (and configured) segments live on this runner, with the configured computed traits; the
    profile JSON gets a ``computed`` section."""
    from takt.profiles.sections import register_section
    from takt.segments.computed import SETTING, from_settings

    traits = from_settings(settings[SETTING.name])
    live = LiveSegments(store_provider(storage, settings), computed=lambda: traits,
                        snapshot_every_s=float(settings["segments.live_snapshot_seconds"]))
    live.runner = runner
    runner.add_listener(live)
    services = services_of(storage)
    services.runner, services.live = runner, live
    register_section("computed", _computed_section)
    return live


def attached(storage: Any) -> LiveSegments | None:
    """The live membership attached to a storage's runner (``None`` when none is)."""
    services = attached_services(storage)
    return services.live if services is not None else None


def _computed_section(storage: Any, profile: dict[str, Any], now: datetime) -> Any:
    live = attached(storage)
    if live is None or not live.computed_provider:
        return None
    if not live.computed and live.computed_provider is not None:
        live.computed = list(live.computed_provider())
    traits, runner = live.computed, live.runner
    if runner is None or not traits:
        return None
    from takt.projections.tables import live_view
    from takt.segments.computed import compute_all

    # the state is copied under the runner's lock and its events read from the log after it, so a read never
    # holds the projection up while it waits for the log
    view = live_view(runner, str(profile.get("id")))
    return None if view is None else compute_all(traits, view, now)
