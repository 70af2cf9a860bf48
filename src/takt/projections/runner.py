"""Running projections against a real log: catch-up, live follow, snapshots and full rebuilds.

The :class:`~takt.profiles.projector.Projector` is pure; this module feeds it the log in position order,
appends the events it derives (``interest_shifted``) back to the log, and writes what changed to the
workspace's profile store (``storage.profiles``: one row per profile and per identity cluster, with the
position they reflect, in one transaction), so a restarted server catches up from there instead of from 0,
and keeps only a bounded cache of profile states in memory (``profiles.cache_size``). A workspace that still
holds a whole-state snapshot of an earlier version is moved into the store on its first load.

One runner per workspace *writes*: on DuckDB that is the process that owns the file; on PostgreSQL the
process holding the ``projections`` lease (an advisory lock, released when the holder dies, so another
process takes over). Only the leader appends derived events and writes the store.

On PostgreSQL the leader is ``takt worker`` (the worker holding the ``worker`` lease; others stand by), and it
writes every folded chunk's changes with their position at once. A serving process (``server.fold``):

* ``always``: folds the log in memory itself (the leader writes the store; the others read it once at start
  and fold the same log into the same state: the fold is deterministic).
* ``never``: never folds; it reads the published state from the store (:mod:`takt.projections.stored`).
* ``auto`` (the default): reads the store while a worker runs; with no worker it takes the ``projections``
  lease and folds (and writes the store, so other serving processes read it), and hands the lease over when a
  worker starts. On DuckDB the server always folds (one process owns the file).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, Protocol

import orjson

from takt.clock import Clock
from takt.errors import not_found
from takt.events.model import Event, StoredEvent
from takt.identity.identifiers import parse_identifier
from takt.profiles.config import ProfileConfig
from takt.profiles.lookup import LogEvents
from takt.profiles.projector import Projector
from takt.profiles.store import DEFAULT_CACHE_SIZE
from takt.projections.facts import build as build_facts
from takt.projections.published import Entry, Published
from takt.projections.stored import StoredReads, identity_part
from takt.storage.base import Storage

logger = logging.getLogger(__name__)

SNAPSHOT_NAME = "profiles"
FREEZE_EVERY_S = 10.0
"""How often the live follower moves what survived into the collector's permanent generation."""
LEASE_NAME = "projections"
WORKER_LEASE = "worker"
"""Held by the running ``takt worker`` (one at a time; standbys wait for it): serving processes in
``server.fold = auto`` read the store while someone holds it."""
FOLD_MODES = ("auto", "always", "never")
SUPERVISE_EVERY_S = 1.0
"""How often a serving process in ``auto`` checks whether a worker runs."""
FOLLOW_EVERY_S = 0.05
"""The live follower reads the log at most this often: wakes from a stream of small commits (1,000 single-event
requests/s) are coalesced into one read, fold and tick per interval instead of one per commit."""

Progress = Callable[[int], None]


class Listener(Protocol):
    """Something derived from profiles as they change (live segment membership, for one). Called under the
    runner's lock, so it may read ``runner.projector``; returns events to append to the log (derived events
    with deterministic ids; only the leader appends them, followers read them back)."""

    def on_changes(self, runner: ProfileRunner, touched: list[str], dropped: list[str]) -> list[Event]:
        """After a chunk of the log is folded: the profiles it changed and the profile ids it removed."""
        ...

    def on_tick(self, runner: ProfileRunner, now: datetime) -> list[Event]:
        """Called under the runner's lock unless the listener has ``locks_itself = True`` (then it must take
        ``runner.lock`` itself around what it reads of the projection). Periodically (about once a second while following, and after a catch-up): for changes that come
        with time alone, such as leaving a "bought in the last 30 days" segment on day 31."""
        ...

    # Optional: ``on_stop(runner) -> None``, called by :meth:`ProfileRunner.stop` after the final catch-up and
    # save (without the runner's lock), so a listener can leave nothing pending (e.g. record what it has still
    # to do for the next start). Listeners without it are skipped.


def _freeze() -> None:
    """Collect, then move every survivor into the collector's permanent generation (later passes skip it;
    reference counting still frees it)."""
    gc.collect()
    gc.freeze()


@contextlib.contextmanager
def _gc_paused(freeze: bool = False) -> Iterator[None]:
    """Folding allocates many long-lived objects; the cyclic collector's full passes over them cost ~1/3 of
    the time and find nothing (profile state has no cycles), so it is paused while a chunk is folded and the
    survivors are frozen afterwards."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        # For a long-running server: what survived the chunk is the projection's long-lived state; move it out
        # of the collector's view (refcounting still frees it), so a later full collection does not stall the
        # server traversing it. `stop` unfreezes. Collect first: with the collector paused, cyclic garbage of
        # every thread (request handling, above all) piled up, and frozen it would never be freed. The
        # collection only traverses what is not frozen yet: the objects made since the last freeze.
        if freeze:
            _freeze()
        if was:
            gc.enable()


class ErrorThrottle:
    """Logs a loop's repeated failure with its traceback the first time, then at most once a minute with how
    many times it failed since, and once when it recovers: a stuck projector is visible, not a flood."""

    def __init__(self, log: logging.Logger, message: str, every_s: float = 60.0):
        self.log, self.message, self.every_s = log, message, every_s
        self.count = 0
        self._last = 0.0

    def failed(self, position: int) -> None:
        """Call from an ``except`` block (the traceback is logged)."""
        self.count += 1
        now = time.monotonic()
        if self.count == 1 or now - self._last >= self.every_s:
            self.log.exception(self.message + " (%d failures so far)", position, self.count)
            self._last = now

    def recovered(self, position: int) -> None:
        if self.count:
            self.log.warning("the projector recovered at position %d after %d failures", position, self.count)
            self.count = 0


class ProfileRunner:
    """Owns the profile projector of one workspace. Thread-safe: the API reads while a thread follows."""

    def __init__(self, storage: Storage, config: ProfileConfig, clock: Clock, cache_size: int = DEFAULT_CACHE_SIZE):
        self.storage = storage
        self.config = config
        self.clock = clock
        self.cache_size = cache_size
        self.lock = threading.RLock()
        # Until load() or reset(): every state in memory, and the first save() writes all of it.
        self._projector = Projector(config, LogEvents(storage.log))
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.folded = 0
        """Events this process folded (a serving process that reads the store folds none)."""
        self.persist_each_chunk = False
        """Write each folded chunk's changes at once (the leader on PostgreSQL, where other processes read
        them); else only when the cache is full and at :meth:`save`."""
        self.fold_mode = "always"
        self.reads: StoredReads | None = None
        """Set while this process reads the published state from the store instead of folding."""
        self._store_view: Projector | None = None
        self._closing = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._follow_args: tuple[float, Callable[[], bool] | None, float] = (300.0, None, 5.0)
        self._last_saved = 0
        self.listeners: list[Listener] = []
        self.published = Published(max(cache_size, 1_000))
        """Immutable per-profile results and their position, for readers without the lock (see
        :mod:`takt.projections.published`)."""

    def add_listener(self, listener: Listener) -> None:
        self.listeners.append(listener)

    # ---- state ----
    @property
    def projector(self) -> Projector:
        """The projector; while this process reads the store, a read-only one over the store, read again when the
        published position moved (for the slower paths that read it under the lock: timelines, search,
        unsubscribe links; profile reads and decide use :meth:`entry`)."""
        if self.reads is None:
            return self._projector
        with self.lock:
            view = self._store_view
            if view is None or view.position < self.published.position:
                found = Projector.from_store(self.storage.profiles, self.config, LogEvents(self.storage.log),
                                             self.cache_size)
                view = self._store_view = found if found is not None else Projector(self.config,
                                                                                    LogEvents(self.storage.log))
            return view

    @projector.setter
    def projector(self, value: Projector) -> None:
        self._projector = value

    @property
    def position(self) -> int:
        if self.reads is not None:
            return self.published.position
        return self.projector.position

    def _new(self, leader: bool) -> Projector:
        store = self.storage.profiles if leader else None
        return Projector(self.config, LogEvents(self.storage.log), store, self.cache_size)

    def load(self, progress: Progress | None = None) -> bool:
        """Continue from the profile store: the identity graph is read whole, profile states when needed
        (a process that is not the leader reads them all). ``False`` when the store is empty and there is no
        older snapshot either (the runner starts from position 0). The leader builds the segment contract
        tables whole when they do not reflect the store's position (a workspace of an earlier version;
        ``progress`` is told of the events read)."""
        store = self.storage.profiles
        leader = self.is_leader()
        projector = Projector.from_store(store, self.config, LogEvents(self.storage.log), self.cache_size,
                                         eager=not leader)
        found = projector is not None
        if projector is None:
            snap = self.storage.snapshots.load(SNAPSHOT_NAME)
            if snap is None:
                if leader:
                    store.clear()  # rows in another format (or half a reset): start over
                projector = self._new(leader)
            else:  # a whole-state snapshot of an earlier version: into the store with it
                projector = Projector.restore(orjson.loads(snap[1]), self.config, LogEvents(self.storage.log))
                found = True
                if leader:
                    projector.persist(store, everything=True)
                    self.storage.snapshots.delete(SNAPSHOT_NAME)
                    projector = self._reopen()
        with self.lock:
            self.projector = projector
            self._last_saved = projector.position if found else -1
            self._republish()
            if found and leader:
                self.build_tables(progress)
        return found

    def build_tables(self, progress: Progress | None = None, force: bool = False) -> bool:
        """Build the segment contract tables whole from the stored states and the log when they do not reflect
        the store's position (or ``force``); ``True`` when it did. Leader only, after the state is stored."""
        store = self.storage.profiles
        if not store.has_tables:
            return False
        with self.lock:
            position = store.position()
            if position is None or (not force and store.tables_position() == position):
                return False
            logger.info("building the segment tables at position %d", position)
            build_facts(self.projector.states(), self.storage.log, self.config, position, store.write_tables,
                        progress)
            return True

    def is_leader(self) -> bool:
        return self.storage.try_lease(LEASE_NAME)

    def save(self) -> None:
        """Write what changed to the profile store (leader only). A projector that was not loaded from the
        store (or belonged to a follower) writes its whole state the first time, then only changes."""
        if not self.is_leader():
            return
        with self.lock:
            self._persist()

    def _persist(self) -> None:
        p, store = self.projector, self.storage.profiles
        if p.store is not None and self._last_saved >= 0 and store.position() is None:
            # the store lost what this runner wrote (PostgreSQL empties UNLOGGED tables after a crash, see
            # takt.storage.pg_projection_tables): the cache holds only part of the state, so fold the log again
            self.projector, self._last_saved = self._new(True), -1
            self._republish()
            store.clear()
            self.catch_up()
            p = self.projector
        if p.store is None:
            p.persist(store, everything=True)
            self.projector = self._reopen()  # from here on: state in the store, a bounded cache in memory
            self._last_saved = p.position
            self.build_tables()  # no facts were kept without a store: the tables are built from the log once
        else:
            p.persist()
        self._last_saved = p.position

    def _reopen(self) -> Projector:
        found = Projector.from_store(self.storage.profiles, self.config, LogEvents(self.storage.log),
                                     self.cache_size)
        assert found is not None
        return found

    def reset(self) -> None:
        with self.lock:
            self.projector, self._last_saved = self._new(self.is_leader()), -1
            self._republish()
        self.storage.profiles.clear()
        self.storage.snapshots.delete(SNAPSHOT_NAME)

    # ---- folding ----
    def catch_up(self, batch: int = 5_000, progress: Progress | None = None,
                 between: Callable[[], None] | None = None, freeze: bool = False, limit: int | None = None) -> int:
        """Apply every event after the current position; append derived events. Returns events applied.
        ``between`` runs after each chunk (the live follower uses it to yield to ingestion). ``limit``: stop
        once at least that many were applied (a request that folds what it just wrote does not take over a
        long backlog)."""
        applied = 0
        if self.reads is not None:
            return 0  # this process reads what the leader publishes to the store: it never folds
        while True:
            if limit is not None and applied >= limit:
                return applied
            if between is not None and applied:
                between()
            # (decoded with the collector paused: takt.log.sealing.Sealer.open)
            published = self.published
            ticket = published.read_starts()
            chunk = self.storage.log.read(after=self.projector.position, limit=batch)
            if not chunk:
                published.drained(ticket)  # everything committed before this read is published
                return applied
            with self.lock, _gc_paused(freeze):
                # the clusters this chunk changes, apart from those changed since the last persist: a cluster can
                # change (a conflict recorded) without its profile's state changing, and is published again too
                graph = self.projector.identity
                before, graph.changed = graph.changed, set()
                try:
                    derived = self.projector.apply(chunk)
                finally:
                    clusters, graph.changed = graph.changed, before
                    before.update(clusters)
                self.folded += len(chunk)
                self._publish(clusters)
                if self.listeners:
                    touched, dropped = self.projector.take_touched()
                    for listener in self.listeners:
                        derived.extend(listener.on_changes(self, touched, dropped))
                if (self.persist_each_chunk or self.projector.needs_persist()) and self.is_leader():
                    # the cache is full of changed states (write them so they can leave), or other processes
                    # read what this one publishes: the chunk's changes and their position, in one transaction
                    self._persist()
            if derived and self.is_leader():
                # Only the lease holder writes derived events; followers fold the same log to the same state
                # and will read the leader's derived events back (they carry deterministic ids).
                self.storage.log.append(derived)
            applied += len(chunk)
            if progress is not None:
                progress(len(chunk))

    def tick(self, now: datetime | None = None) -> int:
        """Let listeners react to time passing; appends what they derive (leader only). Returns its count."""
        if not self.listeners or self.reads is not None:
            return 0
        derived: list[Event] = []
        for listener in self.listeners:
            if getattr(listener, "locks_itself", False):
                # long work (e.g. recomputing contactability) that takes the lock only to copy what it reads:
                # holding it for the whole tick would stall every profile read meanwhile
                derived.extend(listener.on_tick(self, now or self.clock()))
                continue
            with self.lock:
                derived.extend(listener.on_tick(self, now or self.clock()))
        if derived and self.is_leader():
            self.storage.log.append(derived)
        return len(derived)

    def rebuild(self, progress: Progress | None = None) -> int:
        """Recompute every projection from the log."""
        self.reset()
        n = self.catch_up(progress=progress)
        self.save()
        return n

    # ---- publication (takt.projections.published) ----
    def _republish(self) -> None:
        """A new projector (loaded, reset): nothing of the old one's publication holds."""
        self.projector.take_fresh()
        self.published.restart(self.projector.position)

    def _publish(self, clusters: set[str] | None = None) -> None:
        """Under the lock, after a chunk: publish the profiles it changed (and, of the published ones, those
        whose identity ``clusters`` it changed), then its position."""
        p, pub = self.projector, self.published
        fresh, gone = p.take_fresh()
        for pid in gone:
            pub.drop(pid, p.identity.current_id(pid))
        if clusters:
            fresh = [*fresh, *(c for c in clusters.difference(fresh) if pub.entry(c) is not None)]
        for pid in fresh:
            state = p.profile(pid)
            if state is not None and state.id == pid:
                identifiers, part = self._identity(pid)
                pub.put(state, identifiers, p.position, part)
        pub.advance(p.position)

    def _identity(self, pid: str) -> tuple[list[str], dict[str, Any]]:
        """The profile's identifiers and the identity part of its JSON (as :func:`profile_json` gives it)."""
        return identity_part(self.projector.identity.clusters.get(pid))  # a copy: the cluster changes

    def entry(self, ref: str) -> Entry | None:
        """The published profile a reference names (an identifier ``type:value`` or a profile id; a malformed
        identifier is a TaktError), ``None`` when there is none. Never folds; a profile not published yet is
        read once from the projector under the lock (no fold) and published. A process that reads the store
        reads it there (:mod:`takt.projections.stored`)."""
        reads = self.reads
        if reads is not None:
            return reads.entry(ref)
        pub = self.published
        if ":" in ref:
            pid = pub.profile_of(parse_identifier(ref, self.config.identity))
            found = pub.entry(pid) if pid is not None else None
        else:
            found = pub.entry(ref)
        if found is not None:
            return found
        with self.lock:
            p = self.projector
            state = p.profile_for(ref) if ":" in ref else p.profile(ref)
            if state is None:
                return None
            identifiers, part = self._identity(state.id)
            return self.published.put(state, identifiers, p.position, part)

    @property
    def following(self) -> bool:
        """Whether a thread follows the log, or watches the store's position (else nothing publishes unless
        someone catches up)."""
        if self.reads is not None:
            return self.reads.watching
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    # ---- serving: fold, or read the store ----
    def open(self, fold: str = "always") -> None:
        """Before serving (``server.fold``): load the projection to fold it here, or read the published state
        from the store. On a single-process backend (DuckDB) the server always folds."""
        if fold not in FOLD_MODES:
            raise ValueError(f"server.fold must be one of {', '.join(FOLD_MODES)}, not {fold!r}")
        self.fold_mode = "always" if self.storage.single_owner else fold
        if self.fold_mode == "never" or (self.fold_mode == "auto" and not self._may_fold()):
            self.reads = StoredReads(self.storage.profiles, self.config, self.published)
            logger.info("a worker (or another server) folds the log: this server reads the published profiles "
                        "from the store")
        else:
            self.load()

    def _may_fold(self) -> bool:
        """``auto``: no worker runs and this process holds (or just took) the ``projections`` lease."""
        storage = self.storage
        if storage.lease_held_elsewhere(WORKER_LEASE) or storage.lease_held_elsewhere(LEASE_NAME):
            return False
        return storage.try_lease(LEASE_NAME)

    def _supervise(self) -> None:
        """``auto``: hand the folding over to a worker that started; take it when none runs and nobody folds."""
        failing = ErrorThrottle(logger, "checking for a worker failed at position %d; retrying")
        while not self._closing.wait(SUPERVISE_EVERY_S):
            try:
                if self.reads is None:
                    if self.storage.lease_held_elsewhere(WORKER_LEASE):
                        self._to_store()
                elif self._may_fold():
                    self._to_fold()
            except Exception:
                failing.failed(self.position)
                continue
            failing.recovered(self.position)

    def _to_store(self) -> None:
        logger.info("a worker started: handing the projection over at position %d", self.position)
        self._stop_follower()
        with self.lock:
            if self.is_leader():
                self._persist()
        self._stopped_listeners()
        self.storage.release_lease(LEASE_NAME)
        reads = StoredReads(self.storage.profiles, self.config, self.published)
        with self.lock:
            self._store_view = None
            self.reads = reads
        reads.start()

    def _to_fold(self) -> None:
        reads = self.reads
        if reads is not None:
            reads.stop()
        with self.lock:
            self.reads = None
            self._store_view = None
        self.load()
        logger.info("no worker runs: this server folds the log from position %d", self.position)
        self.persist_each_chunk = True
        self._start_follower(self._follow_args)
        self.notify()

    # ---- live ----
    def notify(self) -> None:
        """Called after each commit: wake the follower."""
        self._wake.set()

    def start(self, snapshot_every_s: float = 300.0, busy: Callable[[], bool] | None = None,
              quiet_s: float = 5.0) -> None:
        """Follow the log in a thread. While ``busy()`` says ingestion has work waiting, the follower pauses
        between small chunks, so collecting (which acknowledges clients) keeps most of the one interpreter's
        time and profiles catch up when the load eases. A snapshot (a full dump of the state, which stalls
        the process while it is written) is taken at most every ``snapshot_every_s`` and only after the log
        has been quiet for ``quiet_s``; and always at shutdown."""

        self._follow_args = (snapshot_every_s, busy, quiet_s)
        if self.fold_mode == "auto" and self.reads is None:
            # this server took the lease because no worker runs: other servers read what it publishes
            # (``always`` keeps the earlier behaviour: every server folds, the leader writes now and then)
            self.persist_each_chunk = True
        if self.fold_mode == "auto":
            self._closing.clear()
            self._supervisor = threading.Thread(target=self._supervise, name="takt-projection-mode", daemon=True)
            self._supervisor.start()
        if self.reads is not None:
            self.reads.start()
            return
        self._start_follower(self._follow_args)

    def _start_follower(self, args: tuple[float, Callable[[], bool] | None, float]) -> None:
        snapshot_every_s, busy, quiet_s = args
        stop = self._stop = threading.Event()

        def yield_to_ingest() -> None:
            if busy is not None and busy():
                time.sleep(0.02)

        def follow() -> None:
            last_snapshot = time.monotonic()
            last_activity = time.monotonic()
            last_freeze = time.monotonic()
            failing = ErrorThrottle(logger, "the projector failed at position %d; retrying")
            logger.info("projector following the log from position %d", self.position)
            last_round = 0.0
            while not stop.is_set():
                self._wake.wait(timeout=1.0)
                pause = last_round + FOLLOW_EVERY_S - time.monotonic()
                if pause > 0:
                    stop.wait(pause)
                self._wake.clear()
                last_round = time.monotonic()
                try:
                    # small chunks: reads wait for the lock at most one chunk's fold
                    if self.catch_up(batch=200, between=yield_to_ingest, freeze=True):
                        last_activity = time.monotonic()
                    self.tick()
                except Exception:  # keep following; the next wake retries from the same position
                    failing.failed(self.position)
                    time.sleep(0.5)
                    continue
                failing.recovered(self.position)
                now = time.monotonic()
                if now - last_freeze > FREEZE_EVERY_S:
                    # profile states that reads loaded into the cache are long-lived too: a collection now walks
                    # only what was made since the last freeze, and later ones skip it
                    _freeze()
                    last_freeze = now
                if (now - last_snapshot > snapshot_every_s and now - last_activity > quiet_s
                        and self.position != self._last_saved):
                    self.save()
                    last_snapshot = time.monotonic()

        # What loading made (the store's index: ids of every stored profile and cluster, redirects, …) lives as
        # long as the server: out of the collector's view with it, or every full collection walks it (pauses of
        # 100-750 ms were measured on a 1M-profile workspace).
        _freeze()
        self._thread = threading.Thread(target=follow, name="takt-projector", daemon=True)
        self._thread.start()

    def _stop_follower(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _stopped_listeners(self) -> None:
        for listener in self.listeners:
            on_stop = getattr(listener, "on_stop", None)
            if on_stop is not None:
                on_stop(self)

    def stop(self) -> None:
        self._closing.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout=30)
            self._supervisor = None
        reads = self.reads
        if reads is not None:  # nothing folded here: nothing to save
            reads.stop()
            return
        self._stop_follower()
        try:
            self.catch_up()
        finally:
            self.save()
            self._stopped_listeners()
            gc.unfreeze()  # let the collector see (and free) the state again when the process winds down

    # ---- reads ----
    def profile_json(self, profile_id: str, now: datetime | None = None) -> dict[str, Any]:
        with self.lock:
            return self.projector.to_json(profile_id, now or self.clock())

    def find(self, identifier: str) -> str:
        with self.lock:
            state = self.projector.profile_for(identifier)
        if state is None:
            raise not_found(f"no profile has the identifier {identifier!r}")
        return state.id

    def timeline(self, profile_id: str, before: tuple[datetime, int] | None, limit: int
                 ) -> tuple[list[StoredEvent], tuple[datetime, int] | None]:
        """The profile's events in event time order, newest first (ties: the later log position first),
        ``limit`` at a time after the cursor ``before`` (the (time, position) of the last event of the previous
        page); returns the page and the next cursor. An import of old orders lands late in the log but in its
        place here. Reads all of the profile's events per page (they are sorted by a time the log does not
        index)."""
        with self.lock:
            state = self.projector.profile(profile_id)
            if state is None:
                raise not_found(f"no profile {profile_id!r}")
            positions = state.positions
        events = sorted(self.storage.log.get(positions), key=_time_order, reverse=True)
        if before is not None:
            events = [e for e in events if _time_order(e) < before]
        page = events[:limit]
        return page, (_time_order(page[-1]) if len(events) > limit else None)

    def search(self, query: str, after: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        """Profiles whose identifiers, id or trait values contain ``query`` (see :mod:`takt.profiles.search`)."""
        from takt.profiles.search import search

        with self.lock:
            return search(self.projector.states(), self.projector.identity.clusters, query, after, limit)

    def profile_ids(self) -> list[str]:
        with self.lock:
            return self.projector.profiles()


def _time_order(se: StoredEvent) -> tuple[datetime, int]:
    return (se.event.timestamp, se.position)
