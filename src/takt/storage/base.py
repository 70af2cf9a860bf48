"""What a storage backend provides: the event log, the key store, and room for projection stores."""

from __future__ import annotations

from abc import ABC, abstractmethod

from takt.keys import KeyStore
from takt.log.base import EventLog


class Storage(ABC):
    backend: str = "abstract"
    log: EventLog
    keys: KeyStore

    @abstractmethod
    def close(self) -> None:
        ...

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
