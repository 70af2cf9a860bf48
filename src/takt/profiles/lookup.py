"""Reading a profile's events back for a re-fold: from memory, or from the event log by position."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

from takt.events.model import StoredEvent
from takt.log.base import EventLog


class EventLookup(Protocol):
    def put(self, stored: StoredEvent) -> None:
        """Offer an event the projector just applied (a lookup may keep it)."""

    def get(self, positions: Sequence[int]) -> list[StoredEvent]:
        """The events at these positions, in the order asked."""


class MemoryEvents:
    """Keeps every event it is offered: for tests, simulations and small logs."""

    def __init__(self) -> None:
        self._by_position: dict[int, StoredEvent] = {}

    def put(self, stored: StoredEvent) -> None:
        self._by_position[stored.position] = stored

    def get(self, positions: Sequence[int]) -> list[StoredEvent]:
        return [self._by_position[p] for p in positions]


class LogEvents:
    """Reads positions from an :class:`EventLog`, keeping the last ``cache_size`` events offered or read.

    The positions not in the cache are fetched with one ``log.get`` (the DuckDB log scans a range when they lie
    close together, else looks them up; reading windows of the log decoded ~250 events per wanted one for a
    person whose events are spread over the log). A position the log does not hold is an error: the log is
    append-only.
    """

    def __init__(self, log: EventLog, cache_size: int = 20_000) -> None:
        self.log = log
        self.cache_size = cache_size
        self._cache: OrderedDict[int, StoredEvent] = OrderedDict()

    def put(self, stored: StoredEvent) -> None:
        self._cache[stored.position] = stored
        self._cache.move_to_end(stored.position)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def get(self, positions: Sequence[int]) -> list[StoredEvent]:
        found: dict[int, StoredEvent] = {}
        missing: list[int] = []
        for p in positions:
            hit = self._cache.get(p)
            if hit is None:
                missing.append(p)
            else:
                found[p] = hit
        if missing:
            try:
                for s in self.log.get(missing):
                    found[s.position] = s
            except KeyError:
                pass  # reported below, with the positions
        absent = [p for p in positions if p not in found]
        if absent:
            raise LookupError(f"the event log holds no event at positions {absent[:10]}")
        return [found[p] for p in positions]
