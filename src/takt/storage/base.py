"""What a storage backend provides: the event log, the key store, and room for projection stores."""

from __future__ import annotations

from abc import ABC, abstractmethod

from takt.keys import KeyStore
from takt.log.base import EventLog


class SnapshotStore(ABC):
    """Projection snapshots: a projection's state as bytes, with the log position it reflects."""

    @abstractmethod
    def load(self, name: str) -> tuple[int, bytes] | None:
        ...

    @abstractmethod
    def save(self, name: str, position: int, data: bytes) -> None:
        """Replace the snapshot atomically."""

    @abstractmethod
    def delete(self, name: str) -> None:
        ...


class Storage(ABC):
    backend: str = "abstract"
    log: EventLog
    keys: KeyStore
    snapshots: SnapshotStore

    @abstractmethod
    def close(self) -> None:
        ...

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
