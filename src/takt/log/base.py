"""The event log's narrow interface. Every backend implements it and passes ``tests/contract``.

Promises every backend keeps:

* **append-only**: nothing is updated in place, except by :meth:`EventLog.erase` (the privacy erasure, its own
  audited operation), which turns events into tombstones and keeps their positions and keys;
* **idempotent** on ``(source, message_id)``: appending an event whose key is already stored stores nothing;
  within one append the first of several same-key events wins;
* **atomic and durable**: :meth:`EventLog.append` returns only after the whole batch is committed, or raises
  and stores none of it;
* **ordered**: positions increase with commit order, so a reader that has seen position ``p`` and reads
  ``after=p`` never misses an event committed later (positions may have gaps).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from takt.events.model import Event, StoredEvent


@dataclass(frozen=True)
class AppendResult:
    stored: int
    duplicates: int
    last_position: int


@dataclass(frozen=True)
class ErasureResult:
    events: int
    """Events turned into tombstones by this call (0 when they already were)."""
    keys: int
    """Subject data keys destroyed."""


class EventLog(ABC):
    backend: str = "abstract"

    @abstractmethod
    def append(self, events: Sequence[Event]) -> AppendResult:
        """Store the events not stored yet, atomically and durably."""

    @abstractmethod
    def read(self, after: int = 0, limit: int = 10_000) -> list[StoredEvent]:
        """Events with position > ``after`` in position order, at most ``limit``."""

    @abstractmethod
    def head(self) -> int:
        """The highest position a reader can see now (0 for an empty log)."""

    @abstractmethod
    def count(self) -> int:
        """How many events the log holds."""

    def count_by_kind(self) -> dict[str, int]:
        """How many events of each kind (``track``, ``identify``, …, and takt's own derived kinds) the log holds;
        the values add up to :meth:`count`. The kind is a stored column, never sealed."""
        counts: dict[str, int] = {}
        for se in self.iter():
            counts[se.event.kind] = counts.get(se.event.kind, 0) + 1
        return counts

    @abstractmethod
    def contains(self, source: str, message_id: str) -> bool:
        """Whether an event with this key is stored."""

    def get(self, positions: Sequence[int]) -> list[StoredEvent]:
        """The events at these positions, in the order asked (an unknown position is an error)."""
        raise NotImplementedError(f"{type(self).__name__} cannot read events by position")

    def erase(self, positions: Sequence[int], identifiers: Sequence[str] = ()) -> ErasureResult:
        """Crypto-shred the events at these positions: destroy the data key of every subject they were sealed
        for (and of the subjects ``identifiers`` name, ``type:value``), and turn every event sealed for those
        subjects (and the events at ``positions``) into a tombstone:
        its skeleton (type, messageId, source, provenance, times, event name) with ``context.erased = true``.
        Positions and ``(source, messageId)`` stay, so a re-sent event is still a duplicate and stays erased.
        Idempotent."""
        raise NotImplementedError(f"{type(self).__name__} cannot erase events")

    def mentioning(self, texts: Sequence[str]) -> list[int]:
        """Positions of unsealed events whose stored JSON contains any of ``texts`` (e.g. a quoted profile id in
        a derived event), for erasure."""
        raise NotImplementedError(f"{type(self).__name__} cannot search events")

    @abstractmethod
    def read_matching(self, after: int, upto: int, kinds: Sequence[str] = (), events: Sequence[str] = ()
                      ) -> list[StoredEvent]:
        """Events with ``after < position <= upto`` whose type is in ``kinds`` or whose event name is in
        ``events``, in position order: a reader interested in a few kinds skips decoding the rest (the filter
        runs on the stored columns, which are not sealed)."""

    def iter(self, after: int = 0, batch: int = 10_000) -> Iterator[StoredEvent]:
        """Every event after ``after``, in order, read in batches."""
        while True:
            chunk = self.read(after=after, limit=batch)
            if not chunk:
                return
            yield from chunk
            after = chunk[-1].position

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""


def dedupe_batch(events: Sequence[Event]) -> list[Event]:
    """Drop later events that repeat an earlier one's ``(source, message_id)``."""
    seen: set[tuple[str, str]] = set()
    out: list[Event] = []
    for ev in events:
        key = (ev.source, ev.message_id)
        if key not in seen:
            seen.add(key)
            out.append(ev)
    return out
