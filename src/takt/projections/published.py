"""What the profile runner publishes for readers: immutable per-profile results and the log position they
reflect, read without the runner's lock.

After each folded chunk the runner (under its lock, on the thread that folds) publishes every profile the
chunk changed as an :class:`Entry` — the state's bytes (``ProfileState.to_blob``), decoded once when first read,
with what readers derive from it (the person's policy facts) memoized on it — the identifiers of those profiles,
where merged-away profile ids went, and then the position. A reader looks a profile up in these maps (plain
dict reads of values nobody changes: safe without a lock) and never folds. A profile that was not published
since the runner started (or left the bounded map) is read once from the projector under the lock and
published from there.

In a process that does not fold (a serving process on PostgreSQL beside ``takt worker``), the entries are read
from the profile store instead and the position is the store's (:mod:`takt.projections.stored`).

**Read your writes.** A request that wrote (a consent change, a message, a preference) knows its write's log
position; :meth:`Published.reach` waits, bounded, until the published position reaches it, and answers 503
``projection_behind`` if it does not in time.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from takt.errors import TaktError
from takt.profiles.state import ProfileState

DEFAULT_WAIT_S = 5.0
"""How long a request waits for the projection to reach its own write before answering 503."""


class Entry:
    """One published profile: its state's bytes (immutable), the state decoded on first read (readers must not
    change it) and a memo for what readers derive from it."""

    __slots__ = ("_state", "blob", "cluster", "identifiers", "memo", "pid", "position")

    def __init__(self, pid: str, blob: bytes, position: int, identifiers: tuple[str, ...] = (),
                 cluster: dict[str, Any] | None = None) -> None:
        self.pid = pid
        self.blob = blob
        self.position = position
        self.identifiers = identifiers
        self.cluster = cluster or {}
        """The identity part of the profile's JSON (identifiers, merges, conflicts, splits), copied."""
        self._state: ProfileState | None = None
        self.memo: dict[str, Any] = {}

    @property
    def state(self) -> ProfileState:
        found = self._state
        if found is None:  # two readers may both decode: the same result, one kept
            found = self._state = ProfileState.from_blob(self.pid, self.blob)
        return found


class Published:
    """The published maps and position (see the module doc). Written only under the runner's lock."""

    def __init__(self, size: int = 20_000) -> None:
        self.size = max(1, size)
        self.position = 0
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._ids: dict[str, str] = {}
        self._moved: dict[str, str] = {}
        self._waiters: list[tuple[int, int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._lock = threading.Lock()  # guards the waiters and the read count
        self._reads = 0
        """Reads of the log the runner started: a read that started after a write was acknowledged and found
        nothing new means the write is folded, even when its position holds no event (a duplicate's, a gap)."""
        self.on_wait: Callable[[], None] | None = None
        """Called when a request starts waiting (a process that reads the store's position polls it then:
        :mod:`takt.projections.stored`)."""

    # ---- writing (the runner, under its lock) ----
    def put(self, state: ProfileState, identifiers: Iterable[str], position: int,
            cluster: dict[str, Any] | None = None) -> Entry:
        identifiers = tuple(identifiers)
        entry = Entry(state.id, state.to_blob(), position, identifiers, cluster)
        entries = self._entries
        entries.pop(state.id, None)
        entries[state.id] = entry  # newest last
        self._moved.pop(state.id, None)
        for ident in identifiers:
            self._ids[ident] = state.id
        while len(entries) > self.size:
            entries.popitem(last=False)  # read again from the projector when asked for
        return entry

    def drop(self, pid: str, survivor: str | None) -> None:
        """A profile that is gone: merged into ``survivor`` (or split, ``None``)."""
        self._entries.pop(pid, None)
        if survivor is not None and survivor != pid:
            self._moved[pid] = survivor
        else:
            self._moved.pop(pid, None)

    def advance(self, position: int) -> None:
        """Everything up to ``position`` is published: wake the requests waiting for it."""
        if position <= self.position:
            return
        self.position = position
        self._wake(lambda w: w[0] <= position)

    def read_starts(self) -> int:
        """The runner is about to read the log after its position: a ticket for :meth:`drained`."""
        with self._lock:
            self._reads += 1
            return self._reads

    def drained(self, ticket: int) -> None:
        """The read with this ticket found nothing new: every write acknowledged before it started is
        published."""
        self._wake(lambda w: w[1] < ticket)

    def _wake(self, ready: Any) -> None:
        with self._lock:
            woken = [w for w in self._waiters if ready(w)]
            if not woken:
                return
            self._waiters = [w for w in self._waiters if not ready(w)]
        for _, _, loop, fut in woken:
            loop.call_soon_threadsafe(_settle, fut)

    def restart(self, position: int) -> None:
        """A new projector (loaded, reset for a rebuild or an erasure): nothing published before holds; the
        position may go back (requests waiting keep waiting until the new projector gets there)."""
        self._entries.clear()
        self._ids.clear()
        self._moved.clear()
        self.position = position
        self._wake(lambda w: w[0] <= position)

    def waiting(self) -> bool:
        """Whether a request waits for a position."""
        return bool(self._waiters)

    # ---- reading (any thread, no lock) ----
    def entry(self, pid: str) -> Entry | None:
        for _ in range(8):  # merged-away ids lead to their survivor
            found = self._entries.get(pid)
            if found is not None:
                return found
            nxt = self._moved.get(pid)
            if nxt is None:
                return None
            pid = nxt
        return None

    def profile_of(self, identifier: str) -> str | None:
        """The profile a normalized identifier ``type:value`` was last published in."""
        return self._ids.get(identifier)

    async def reach(self, position: int, timeout: float | None = None) -> None:
        """Wait until the published position is at least ``position`` (a write's), at most ``timeout``
        (default :data:`DEFAULT_WAIT_S`)."""
        if self.position >= position:
            return
        timeout = DEFAULT_WAIT_S if timeout is None else timeout
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        with self._lock:
            waiter = (position, self._reads, loop, fut)
            self._waiters.append(waiter)
        poke = self.on_wait
        if poke is not None:
            poke()
        if self.position >= position:  # published meanwhile (advance may have missed the new waiter)
            _settle(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise TaktError(f"the profile projection did not reach this write (log position {position}) within "
                            f"{timeout:g} s (it is at {self.position}); the write is stored: retry the read",
                            code="projection_behind", status=503) from None
        finally:
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)


def _settle(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
