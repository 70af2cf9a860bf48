"""Reading what the projector published from the profile store, in a process that does not fold.

On PostgreSQL one process holds the ``projections`` lease and folds: ``takt worker`` (or, with no worker,
one ``takt serve``; see :mod:`takt.projections.runner`). It writes each folded chunk's changed profiles, their
identity clusters and the position they reflect in one transaction. Every other serving process reads those
rows (:class:`StoredReads`): a profile is looked up per request (the identifier's cluster, then the state
and cluster rows: three indexed queries), and the decoded state with what readers derived from it is kept in
a small per-process cache while the stored bytes are unchanged. A watcher thread polls the store's position
and advances the process's :class:`~takt.projections.published.Published` position, which read-your-writes
waits on (briefly while a request waits, rarely otherwise). Nothing here folds or takes the runner's lock.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any

import orjson

from takt.identity.identifiers import parse_identifier
from takt.identity.resolver import Cluster
from takt.profiles.config import ProfileConfig
from takt.profiles.state import ProfileState
from takt.profiles.store import ProfileStore
from takt.projections.published import Entry, Published

logger = logging.getLogger(__name__)

POLL_WAITING_S = 0.005
"""How often the watcher reads the store's position while a request waits for it."""
POLL_IDLE_S = 0.25
"""How often otherwise (the position /health shows, and requests that need not wait)."""
CACHE_SIZE = 2_000


def identity_part(cluster: Cluster | None) -> tuple[list[str], dict[str, Any]]:
    """A profile's identifiers and the identity part of its JSON (as :func:`takt.profiles.view.profile_json`
    gives it), copied."""
    if cluster is None:
        return [], {"identifiers": [], "merges": [], "conflicts": [], "splits": []}
    part = orjson.loads(orjson.dumps({
        "identifiers": list(cluster.identifiers), "merges": [m.to_dict() for m in cluster.merges],
        "conflicts": [c.to_dict() for c in cluster.conflicts.values()],
        "splits": [s.to_dict() for s in cluster.splits]}))
    return list(cluster.identifiers), part


class StoredReads:
    """Published profiles read from the store (see the module doc)."""

    def __init__(self, store: ProfileStore, config: ProfileConfig, published: Published,
                 cache_size: int = CACHE_SIZE) -> None:
        self.store = store
        self.config = config
        self.published = published
        self.cache_size = max(1, cache_size)
        self._cache: OrderedDict[str, tuple[bytes, bytes, Entry]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._stop = threading.Event()
        self._poke = threading.Event()
        self._thread: threading.Thread | None = None
        self.reads = 0
        """Profiles read from the store (each a state row and a cluster row)."""
        self.polls = 0
        """Reads of the store's position by the watcher."""

    # ---- the position ----
    def refresh(self) -> int:
        """Read the store's position and publish it (wakes the requests waiting for it)."""
        self.polls += 1
        position = self.store.position()
        if position is not None:
            self.published.advance(position)
        return self.published.position

    def start(self) -> None:
        self.refresh()
        self.published.on_wait = self._poke.set
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="takt-published-watch", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        failing = 0
        while not self._stop.is_set():
            waiting = self.published.waiting()
            if not waiting:
                self._poke.wait(POLL_IDLE_S)
                self._poke.clear()
            else:
                self._stop.wait(POLL_WAITING_S)
            try:
                self.refresh()
                failing = 0
            except Exception:  # the next poll retries; say so once, not every few milliseconds
                if not failing:
                    logger.exception("reading the profile store's position failed; retrying")
                failing += 1
                self._stop.wait(0.5)

    def stop(self) -> None:
        self._stop.set()
        self._poke.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.published.on_wait = None

    @property
    def watching(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    # ---- profiles ----
    def entry(self, ref: str) -> Entry | None:
        """The stored profile a reference names (an identifier ``type:value`` — a malformed one is a
        TaktError — or a profile id), ``None`` when there is none. A profile id that a merge took away is not
        followed to its survivor here (identifiers always find the current profile)."""
        ident = parse_identifier(ref, self.config.identity) if ":" in ref else None
        for _ in range(3):
            if ident is not None:
                pid = self.store.members([ident]).get(ident)
                if pid is None:
                    return None
            else:
                pid = ref
            position = self.published.position
            blob = self.store.load([pid]).get(pid)
            raw = self.store.load_clusters([pid]).get(pid)
            if blob is None or raw is None:
                if ident is not None:
                    continue  # merged or split between the two reads: look the identifier up again
                return None
            self.reads += 1
            return self._entry(pid, blob, raw, position)
        return None

    def _entry(self, pid: str, blob: bytes, raw: bytes, position: int) -> Entry:
        with self._cache_lock:
            hit = self._cache.get(pid)
            if hit is not None and hit[0] == blob and hit[1] == raw:
                self._cache.move_to_end(pid)
                return hit[2]  # unchanged rows: the decoded state and its memo stay valid
        cluster = Cluster.from_dict(orjson.loads(raw), self.config.identity)
        identifiers, part = identity_part(cluster)
        entry = Entry(pid, blob, position, tuple(identifiers), part)
        entry._state = ProfileState.from_blob(pid, blob)
        with self._cache_lock:
            self._cache[pid] = (blob, raw, entry)
            self._cache.move_to_end(pid)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return entry
