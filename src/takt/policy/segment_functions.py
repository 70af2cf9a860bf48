"""``contactable(channel, purpose)`` in the segment language: people policy would let a message reach on that
channel for that purpose, as far as the standing rules go.

**What it means.** For each message purpose (``marketing``, ``transactional``, ``service``) and channel,
:func:`contactability` asks :func:`~takt.policy.decide.decide` about that one channel and counts the person as
contactable when nothing *standing* blocks it: consent (``no_consent``, ``withdrawn``, ``objected``,
``not_double_opted_in``), the contact point (``no_contact_point``, ``third_party_contact_point``,
``observed_contact_point``, ``claimed_contact_point``, ``not_customer_given``, ``suppressed``) and a stated preference for another channel
(``not_preferred_channel``). The rules of the moment of sending (quiet hours, budget, daily limit, complaint
cooling-off) are left to ``decide`` when the message goes out, so membership does not flicker with the clock.

**SQL.** A correlated ``EXISTS`` over the table ``profile_contactability(profile_id, channel, purpose)`` (one
row per contactable pair), kept in the workspace's store beside the profile tables (DuckDB or PostgreSQL). It is
written by :func:`refresh` (every profile) and kept current by :class:`ContactabilityListener` (the profiles
folded chunks changed, a bounded batch per tick, so it trails the log by seconds) once attached to the profile
runner with :func:`attach_runner` (the server does).

**Live.** With :func:`attach` (storage, profile runner, policy settings) the function evaluates from the
profile itself: the same :func:`~takt.policy.from_profile.person_from_profile` and suppression lookup as
``POST /v1/decide``. Without it, nothing is contactable (the safe answer).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlglot import exp

from takt.errors import TaktError
from takt.policy.config import PolicySettings
from takt.policy.consent import CONSENT, CONSENT_UPDATED
from takt.policy.decide import Intent, decide
from takt.policy.from_profile import person_from_profile
from takt.policy.messages import MESSAGE
from takt.policy.person import ContactPoint, PolicyPerson
from takt.policy.suppression_store import SuppressionEntry, suppression_entries
from takt.policy.vocab import CHANNELS, MESSAGE_PURPOSES
from takt.policy.workspace_settings import policy_settings
from takt.segments.ast import Value
from takt.segments.functions import FUNCTIONS, FunctionContext, FunctionSpec
from takt.segments.view import ProfileView
from takt.services import services_of
from takt.storage.base import Storage

TABLE = "profile_contactability"
STANDING = frozenset({"no_consent", "withdrawn", "objected", "not_double_opted_in", "no_contact_point",
                      "third_party_contact_point", "observed_contact_point", "claimed_contact_point",
                      "not_customer_given", "suppressed",
                      "not_preferred_channel"})
"""Reason codes that make a channel unusable until something changes (not merely until time passes)."""

CHANNEL_WORDS = {"email": "email", "sms": "SMS", "phone": "phone", "push": "push notification", "post": "post",
                 "social_dm": "social media message", "in_app": "in-app message"}

DDL = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    profile_id VARCHAR NOT NULL,
    channel    VARCHAR NOT NULL,
    purpose    VARCHAR NOT NULL,
    PRIMARY KEY (profile_id, channel, purpose)
)
"""
SCHEMA_LOCK = 0x74616B74_00000052  # "takt" · contactability schema


def contactability(person: PolicyPerson, settings: PolicySettings, now: datetime) -> frozenset[tuple[str, str]]:
    """Every ``(channel, purpose)`` on which nothing standing blocks a message to ``person``.

    One decision per purpose over every channel gives each channel the reasons it would get alone: the channel
    decide chooses is usable; every other one is rejected with its own reasons (``one_channel_per_message``
    when it had none, ``not_preferred_channel`` when the customer prefers another, as it would alone)."""
    out: set[tuple[str, str]] = set()
    for purpose in MESSAGE_PURPOSES:
        d = decide(person, Intent(purpose), CHANNELS, now, settings)
        for channel in CHANNELS:
            if channel == d.channel or not any(r.code in STANDING for r in d.rejected[channel]):
                out.add((channel, purpose))
    return frozenset(out)


def contactability_per_channel(person: PolicyPerson, settings: PolicySettings,
                               now: datetime) -> frozenset[tuple[str, str]]:
    """:func:`contactability` asking ``decide`` about each channel alone (21 decisions; the reference the
    tests hold :func:`contactability` to)."""
    out: set[tuple[str, str]] = set()
    for purpose in MESSAGE_PURPOSES:
        intent = Intent(purpose)
        for channel in CHANNELS:
            d = decide(person, intent, [channel], now, settings)
            if d.allowed or not any(r.code in STANDING for r in d.rejected.get(channel, d.reasons)):
                out.add((channel, purpose))
    return frozenset(out)


def _check_args(args: Sequence[Value]) -> tuple[str, str]:
    channel, purpose = str(args[0]), str(args[1])
    if channel not in CHANNELS:
        raise TaktError(f"contactable: unknown channel {channel!r} (expected one of {', '.join(CHANNELS)})",
                        code="invalid_segment")
    if purpose not in MESSAGE_PURPOSES:
        raise TaktError(f"contactable: unknown purpose {purpose!r} (expected one of {', '.join(MESSAGE_PURPOSES)})",
                        code="invalid_segment")
    return channel, purpose


# ---- the table ----
class ContactabilityTable:
    """``profile_contactability`` in one storage (DuckDB or PostgreSQL)."""

    def __init__(self, storage: Storage):
        self.storage = storage
        with storage.session(transaction=True) as s:
            s.lock(SCHEMA_LOCK)
            s.script(DDL)

    def replace(self, rows: Iterable[tuple[str, str, str]], profile_ids: Sequence[str] | None = None) -> None:
        """Replace the rows of ``profile_ids`` (``None``: of everyone) with ``rows``, atomically."""
        rows = sorted(set(rows))
        ids = None if profile_ids is None else sorted(set(profile_ids))
        with self.storage.session(transaction=True) as s:
            if ids is None:
                s.execute(f"DELETE FROM {TABLE}")
            elif ids:
                s.execute(f"DELETE FROM {TABLE} WHERE profile_id IN (SELECT unnest(CAST(? AS VARCHAR[])))", [ids])
            if rows:
                # one bulk insert (row by row took minutes for a million rows)
                import pyarrow as pa

                s.insert(TABLE, pa.table({
                    "profile_id": pa.array([r[0] for r in rows], pa.string()),
                    "channel": pa.array([r[1] for r in rows], pa.string()),
                    "purpose": pa.array([r[2] for r in rows], pa.string())}))

    def rows(self) -> list[tuple[str, str, str]]:
        with self.storage.session() as s:
            return [(str(a), str(b), str(c)) for a, b, c in
                    s.execute(f"SELECT profile_id, channel, purpose FROM {TABLE} ORDER BY 1, 2, 3")]


def table_of(storage: Storage) -> ContactabilityTable:
    """The storage's contactability table: ``services_of(storage).contactability``."""
    return services_of(storage).contactability


# ---- from profiles ----
CHUNK = 200
POLICY_EVENTS = frozenset({CONSENT, CONSENT_UPDATED, MESSAGE})
"""The profile ``event_counts`` names (kinds; names for track calls) of the events :func:`contactability`
depends on: consent changes (and, when there are any, every event, for the identity replay that places them)
and messages."""


def needs_events(state: Any) -> bool:
    """Whether the profile's events must be read to know its contactability. A profile whose events include no
    consent change and no message gets the same answer from its state alone: the other events only give a
    time zone (for quiet hours, which are not standing) and touchpoints (channel order, moot for one channel).
    Known from the state's event counts, when they count every event it holds (else: read them)."""
    counts = state.stats.get("event_counts") if isinstance(state.stats, Mapping) else None
    if not isinstance(counts, Mapping) or sum(v for v in counts.values() if isinstance(v, int)) != len(state.folded):
        return True
    return any(name in counts for name in POLICY_EVENTS)


COPY_SLICE = 25
"""Profiles copied per hold of the runner's lock (~0.4 ms each)."""


def contactability_of(storage: Storage, runner: Any, profile_ids: Sequence[str], settings: PolicySettings,
                      now: datetime) -> dict[str, frozenset[tuple[str, str]]]:
    """What :func:`contactability` says for these profiles of ``runner`` (a
    :class:`~takt.projections.runner.ProfileRunner`), read as ``POST /v1/decide`` reads them: from the policy
    facts the fold keeps in the state (:func:`~takt.policy.from_profile.facts_from_state`), and the suppression
    list, looked up once for all of them. A state folded before those facts existed is copied and its events
    read instead (only of those that :func:`needs_events`), in one go."""
    from takt.policy import folded
    from takt.policy.from_profile import PersonFacts, contact_points, facts_from_state, with_suppression
    from takt.profiles.state import ProfileState

    based: dict[str, PersonFacts] = {}  # from the policy facts the fold kept: no events read, no copy
    states: dict[str, ProfileState] = {}  # copies of the others (a state folded before those facts existed)
    for i in range(0, len(profile_ids), COPY_SLICE):
        part = profile_ids[i:i + COPY_SLICE]
        with runner.lock:  # held per slice: profile reads wait for one slice's copy, not for the whole chunk's
            prefetch = getattr(runner.projector, "prefetch", None)
            if prefetch is not None:
                prefetch(part)  # one store query for the slice, not one per profile
            for pid in part:
                state = runner.projector.profile(pid)
                if state is None or state.id != pid:  # a merged-away id finds its survivor: it has no rows
                    continue
                if folded.exact(state):
                    based[pid] = facts_from_state(state)
                else:
                    states[pid] = ProfileState.from_dict(state.to_dict())
    reading = {pid for pid, state in states.items() if needs_events(state)}
    positions = sorted({p for pid in reading for p in states[pid].positions})
    by_position = {e.position: e for e in storage.log.get(positions)} if positions else {}
    points = [cp for state in states.values() for cp in contact_points(state)[0]]
    points += [cp for facts in based.values() for cp in facts.person.contact_points]
    entries = suppression_entries(storage, points)  # syncs the list once

    def lookup(mine: Sequence[ContactPoint]) -> list[tuple[ContactPoint, SuppressionEntry]]:
        wanted = {(cp.kind, cp.value) for cp in mine}
        return [(cp, e) for cp, e in entries if (cp.kind, cp.value) in wanted]

    out: dict[str, frozenset[tuple[str, str]]] = {pid: frozenset() for pid in profile_ids}
    for pid, base in based.items():
        out[pid] = contactability(with_suppression(base, lookup).person, settings, now)
    for pid, state in states.items():
        events = [by_position[p] for p in sorted(set(state.positions))] if pid in reading else []
        facts = person_from_profile(state, events, runner.config.identity, lookup)
        out[pid] = contactability(facts.person, settings, now)
    return out


def profile_contactability(storage: Storage, runner: Any, profile_id: str, settings: PolicySettings,
                           now: datetime) -> frozenset[tuple[str, str]]:
    """What :func:`contactability` says for one profile of ``runner``."""
    return contactability_of(storage, runner, [profile_id], settings, now)[profile_id]


def _settings(storage: Storage, settings: PolicySettings) -> PolicySettings:
    return policy_settings(storage, settings)


def refresh(storage: Storage, runner: Any, settings: PolicySettings, now: datetime,
            profile_ids: Sequence[str] | None = None, progress: Callable[[int], None] | None = None) -> int:
    """Recompute ``profile_contactability`` for ``profile_ids`` (``None``: every profile); returns the number
    of rows written."""
    settings = _settings(storage, settings)
    with runner.lock:
        ids = list(runner.profile_ids()) if profile_ids is None else list(profile_ids)
    rows: list[tuple[str, str, str]] = []
    for i in range(0, len(ids), CHUNK):
        chunk = ids[i:i + CHUNK]
        for pid, pairs in contactability_of(storage, runner, chunk, settings, now).items():
            rows.extend((pid, ch, pu) for ch, pu in pairs)
        if progress is not None:
            progress(len(chunk))
    table_of(storage).replace(rows, None if profile_ids is None else ids)
    return len(rows)


MARKER = "contactability"
"""The snapshot (``storage.snapshots``) that says up to which runner position the table is complete."""
MARKER_VERSION = 2  # 2: claimed contact points (public-only) are never contactable
RULES_VERSION = 2
"""Bumped when the rules the table's rows follow change within one takt version, so that a server starting on
an older table recomputes it (2: consent claims and the time order of consent; suppression scopes)."""
"""Changes when what a row means does (a marker of another version is ignored: everything is recomputed)."""
MARKER_MAX_PENDING = 1_000
"""A tick records the marker only while at most this many profiles are still to recompute (the shutdown
records it with all of them)."""
MARKER_EVERY_S = 10.0
"""Ticks record the marker at most this often (an older marker is as safe, it only leaves more to recompute)."""


def _canonical(value: Any) -> Any:
    """A JSON-able form of a configuration that does not depend on the process (set order, object ids)."""
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return sorted([str(k), _canonical(v)] for k, v in value.items())
    if isinstance(value, set | frozenset):
        return sorted(repr(_canonical(v)) for v in value)
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def fingerprint(settings: PolicySettings, config: Any) -> str:
    """What the table's rows depend on besides the profiles: takt's version (an upgrade may change the rules),
    the policy settings (with the suppression key) and the profile configuration the runner folds with. A
    marker written under another fingerprint is ignored."""
    import hashlib

    from takt import __version__

    blob = orjson.dumps([MARKER_VERSION, RULES_VERSION, __version__, _canonical(settings), _canonical(config)])
    return hashlib.sha256(blob).hexdigest()


@dataclass(frozen=True)
class Marker:
    """``profile_contactability`` holds what :func:`contactability` says for every profile as of runner
    position ``position``, except for the profiles in ``pending`` (still to recompute)."""

    position: int
    fingerprint: str
    pending: tuple[str, ...] = ()
    direct: int = -1
    """How many ``admin`` suppressions (:func:`direct_suppressions`) there were when the run that wrote the
    marker started: one added since changed no profile, so the next start recomputes everyone."""


def load_marker(storage: Storage) -> Marker | None:
    """The recorded marker (``None``: none, or of another version)."""
    snap = storage.snapshots.load(MARKER)
    if snap is None:
        return None
    try:
        data = orjson.loads(snap[1])
        if data.get("version") != MARKER_VERSION:
            return None
        return Marker(int(snap[0]), str(data["fingerprint"]), tuple(str(p) for p in data.get("pending", ())),
                      int(data.get("direct", -1)))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None  # unreadable: as if there were none (everything is recomputed)


def save_marker(storage: Storage, marker: Marker) -> None:
    data = {"version": MARKER_VERSION, "fingerprint": marker.fingerprint, "pending": sorted(marker.pending),
            "direct": marker.direct}
    storage.snapshots.save(MARKER, marker.position, orjson.dumps(data))


def direct_suppressions(storage: Storage) -> int:
    """How many suppressions an operator added directly (reason ``admin``): they change no profile (the list
    only grows). Entries derived from the log come with the events that change the profile, and ``erasure``
    entries with the erasure."""
    from takt.policy.suppression_store import suppression_list

    return suppression_list(storage).count(reason="admin")


def delete_stale_rows(storage: Storage) -> None:
    """Delete the rows of profiles the profile store no longer has (merged away, erased), in one statement.
    A profile is an identity cluster of the store (``identity_clusters``, as ``Projector.profiles`` counts)."""
    sql = (f"DELETE FROM {TABLE} WHERE NOT EXISTS "
           f"(SELECT 1 FROM identity_clusters c WHERE c.id = {TABLE}.profile_id)")
    with storage.session() as s:
        s.execute(sql)


def refresh_all(storage: Storage, runner: Any, settings: PolicySettings, now: datetime,
                progress: Callable[[int], None] | None = None) -> int:
    """:func:`refresh` for every profile, then record that the table is complete up to the runner's position
    (so a server starting on this workspace recomputes nothing; leader only). Returns the rows written."""
    settings = _settings(storage, settings)
    direct = direct_suppressions(storage)
    with runner.lock:
        position = runner.position
    rows = refresh(storage, runner, settings, now, progress=progress)
    if runner.is_leader():
        save_marker(storage, Marker(position, fingerprint(settings, runner.config), (), direct))
    return rows


class ContactabilityListener:
    """Keeps ``profile_contactability`` current as profiles change (a runner listener).

    Folding a chunk only marks the profiles it changed; every tick (about once a second) rewrites the rows of
    at most ``batch`` marked profiles, so the follower is never held up for long.

    **Where the table is complete.** After a tick that leaves at most :data:`MARKER_MAX_PENDING` profiles
    marked (at most every :data:`MARKER_EVERY_S`), the leader records a :class:`Marker`: the runner position ``P`` read under the runner's lock (every
    change up to ``P`` was marked by then, as :meth:`on_changes` runs under that lock right after the fold) and
    the profiles still marked or being recomputed. :meth:`on_stop` (the runner's clean shutdown) records it with
    every marked profile, however many. The first tick of the next start marks only what changed after ``P``
    (:meth:`~takt.profiles.store.ProfileStore.changed_since`) plus the recorded ones, and deletes the rows of
    profiles that no longer exist (one statement). Without a usable marker (first start, another version,
    other settings, an ``admin`` suppression added since, a runner without a profile store) it marks every
    profile. :func:`refresh` recomputes everything at once (:func:`refresh_all` records the marker too)."""

    locks_itself = True
    """The runner calls :meth:`on_tick` without its lock: :func:`refresh` takes it only to copy the profiles it
    reads, so reads are not held up while contactability is computed."""

    def __init__(self, storage: Storage, settings: PolicySettings, batch: int = 200):
        self.storage = storage
        self.settings = _settings(storage, settings)
        self.batch = batch
        self.dirty: dict[str, None] = {}
        self._inflight: dict[str, int] = {}
        """Profiles taken off ``dirty`` by a tick that has not written them yet (with how many ticks)."""
        self._dirty_lock = threading.Lock()
        self.started = False
        self.start_mode: str | None = None
        """How the first tick started: ``"marker"`` (only what changed) or ``"everyone"``."""
        self._saved: tuple[int, frozenset[str]] | None = None
        self._saved_at = float("-inf")
        self._direct = -1
        table_of(storage)  # the SQL can run (and finds nobody) before the first tick

    def on_changes(self, runner: Any, touched: list[str], dropped: list[str]) -> list[Any]:
        with self._dirty_lock:  # catch-ups may run in request threads while a tick works without the runner lock
            self.dirty.update(dict.fromkeys(touched))
            self.dirty.update(dict.fromkeys(dropped))
        return []

    def _fingerprint(self, runner: Any) -> str:
        return fingerprint(self.settings, runner.config)

    def _start(self, runner: Any) -> None:
        """The first tick: mark what the table may be missing."""
        leader = runner.is_leader()
        marker = load_marker(self.storage)
        self._direct = direct_suppressions(self.storage)
        if marker is not None and (marker.fingerprint != self._fingerprint(runner) or marker.direct != self._direct):
            marker = None
        store = runner.projector.store if leader else None
        if store is not None and store.position() != runner.position:
            # what the runner folded before this listener saw it (if anything) goes to the store now, so
            # changed_since sees it; what it folds from here on, on_changes marks
            runner.save()
            with runner.lock:
                store = runner.projector.store
        if marker is not None and store is not None:
            ids: list[str] = [*store.changed_since(marker.position), *marker.pending]
            self.start_mode = "marker"
        else:
            with runner.lock:
                ids = runner.profile_ids()
            self.start_mode = "everyone"
        if store is not None:
            delete_stale_rows(self.storage)  # before any row is written: a new profile is marked anyway
        with self._dirty_lock:
            self.dirty.update(dict.fromkeys(ids))
        self._saved_at = time.monotonic()  # the first record waits: a start stays short
        self.started = True

    def on_tick(self, runner: Any, now: datetime) -> list[Any]:
        if not self.started:
            self._start(runner)
        with self._dirty_lock:
            ids = list(self.dirty)[:self.batch]
            for pid in ids:  # taken off first: a change during the refresh marks the profile again
                self.dirty.pop(pid, None)
                self._inflight[pid] = self._inflight.get(pid, 0) + 1
        try:
            if ids:
                try:
                    refresh(self.storage, runner, self.settings, now, profile_ids=ids)
                except BaseException:
                    with self._dirty_lock:  # not written: try them again on the next tick
                        self.dirty.update(dict.fromkeys(ids))
                    raise
        finally:
            with self._dirty_lock:
                for pid in ids:
                    left = self._inflight.pop(pid) - 1
                    if left:
                        self._inflight[pid] = left
        if time.monotonic() - self._saved_at >= MARKER_EVERY_S:
            self._record(runner, MARKER_MAX_PENDING)
        return []

    def _record(self, runner: Any, max_pending: int | None) -> None:
        """Record the marker at the runner's position, if this process writes and it says something new."""
        with runner.lock:  # no fold in between: every change up to `position` is marked or written
            position = runner.position
            with self._dirty_lock:
                if max_pending is not None and len(self.dirty) + len(self._inflight) > max_pending:
                    return  # (a start's backlog: not copied every tick)
                pending = frozenset(self.dirty) | frozenset(self._inflight)
        if self._saved == (position, pending) or not runner.is_leader():
            return
        save_marker(self.storage, Marker(position, self._fingerprint(runner), tuple(pending), self._direct))
        self._saved, self._saved_at = (position, pending), time.monotonic()

    def on_stop(self, runner: Any) -> None:
        """The runner stops: record the marker with every profile still marked, so the next start recomputes
        those (and what changes after), not everyone. Before the first tick the recorded marker still holds."""
        if self.started:
            self._record(runner, None)

    def flush(self, runner: Any, now: datetime) -> None:
        """Process every marked profile now."""
        with runner.lock:  # as the follower's ticks do
            while self.dirty or not self.started:
                self.on_tick(runner, now)


def attach_runner(storage: Storage, runner: Any, settings: Any) -> ContactabilityListener:
    """For a server or worker: live evaluation reads through ``runner``, and a listener keeps the SQL table
    current. ``settings``: the workspace :class:`~takt.settings.Settings` or :class:`PolicySettings`."""
    policy = policy_settings(storage, settings)
    attach(storage, runner, policy)
    listener = ContactabilityListener(storage, policy)
    runner.add_listener(listener)
    return listener


# ---- the segment function ----
@dataclass(frozen=True)
class _Live:
    storage: Storage
    runner: Any
    settings: PolicySettings


_live: list[_Live] = []


def attach(storage: Storage | None, runner: Any = None, settings: PolicySettings | None = None) -> None:
    """Live evaluation of ``contactable`` reads profiles through ``runner`` (``None``: detach)."""
    _live.clear()
    if storage is not None and runner is not None:
        _live.append(_Live(storage, runner, _settings(storage, settings or PolicySettings())))


def _compile(args: tuple[Value, ...], ctx: FunctionContext) -> exp.Expression:
    channel, purpose = _check_args(args)
    c = "ct"
    where = exp.and_(exp.EQ(this=exp.column("profile_id", c), expression=ctx.profile_id),
                     exp.EQ(this=exp.column("channel", c), expression=exp.Literal.string(channel)),
                     exp.EQ(this=exp.column("purpose", c), expression=exp.Literal.string(purpose)), copy=False)
    return exp.Exists(this=exp.select(exp.Literal.number(1)).from_(exp.to_table(TABLE).as_(c)).where(where))


def _evaluate(args: tuple[Value, ...], view: ProfileView, now: datetime) -> bool:
    channel, purpose = _check_args(args)
    if not _live:
        return False
    live = _live[0]
    return (channel, purpose) in profile_contactability(live.storage, live.runner, view.profile_id, live.settings,
                                                        now)


def _explain(args: tuple[Value, ...]) -> str:
    channel, purpose = str(args[0]), str(args[1])
    return f"who can be contacted by {CHANNEL_WORDS.get(channel, channel)} for {purpose}"


CONTACTABLE = FunctionSpec(
    name="contactable",
    params=(("channel", "string"), ("purpose", "string")),
    returns="bool",
    explain=_explain,
    compile=_compile,
    evaluate=_evaluate,
)

if "contactable" not in FUNCTIONS:
    FUNCTIONS.register(CONTACTABLE)
