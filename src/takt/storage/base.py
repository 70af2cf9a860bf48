"""What a storage backend provides: the event log, the key store, and room for projection stores."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from takt.keys import KeyStore
from takt.log.base import EventLog
from takt.profiles.store import ProfileStore

if TYPE_CHECKING:
    from takt.segments.budget import BudgetedQuery, QueryBudget
    from takt.services import Services
    from takt.storage.session import SqlSession


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
    single_owner: bool = False
    """Whether one process owns the database while it is open (DuckDB's file): other processes reach the
    workspace through that process's API."""
    anchor: str = ""
    """Where the workspace's secret files are found (:func:`takt.privacy.crypto.default_master_key_path`): the
    DuckDB file's path, or the database URL."""
    log: EventLog
    keys: KeyStore
    snapshots: SnapshotStore
    profiles: ProfileStore
    """Profile states and identity clusters, one row each (:mod:`takt.profiles.store`)."""
    services: Services | None = None
    """The workspace's services over this storage (:mod:`takt.services`), built once when it is opened."""

    @abstractmethod
    def close(self) -> None:
        ...

    @property
    def dialect(self) -> str:
        """The sqlglot dialect of the engine's SQL (``duckdb``, ``postgres``)."""
        return self.backend

    @abstractmethod
    def session(self, transaction: bool = False) -> AbstractContextManager[SqlSession]:
        """A :class:`~takt.storage.session.SqlSession` on a connection of this storage; with ``transaction``
        its statements commit together when the block ends (and roll back if it raises)."""

    def budgeted_query(self, budget: QueryBudget) -> BudgetedQuery:
        """A segment query to run under ``budget`` on a connection of its own
        (:class:`takt.segments.budget.BudgetedQuery`)."""
        from takt.errors import TaktError

        raise TaktError(f"segment queries are not supported on {self.backend}", code="unavailable", status=503)

    @property
    def database_file(self) -> Path | None:
        """The file the engine keeps the whole database in (DuckDB's), which :meth:`compact` rewrites; ``None``
        for a server database."""
        return None

    def has_table(self, name: str) -> bool:
        """Whether the database holds a table ``name`` (in the schema takt's statements use)."""
        with self.session() as s:
            rows = s.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name])
        return bool(rows and rows[0][0])

    def reclaim(self) -> None:  # noqa: B027 - nothing to do where the engine keeps no dead rows
        """After an erasure: let what it rewrote or deleted leave the engine's files as far as the engine can while
        it is open (DuckDB: a checkpoint moves the WAL into the file, skipped when other transactions are open;
        PostgreSQL: ``VACUUM FULL`` of the projection tables, then ``CHECKPOINT``). Never raises for a skipped
        checkpoint."""

    def parquet_export(self) -> bool:
        """Whether :meth:`write_parquet` is available on this engine."""
        return False

    def write_parquet(self, tables: Sequence[str], out: Path) -> dict[str, int]:
        """Write each table as ``out/<table>.parquet``; rows written per table."""
        from takt.errors import TaktError

        raise TaktError("export parquet runs on DuckDB workspaces for now", code="unsupported")

    def duckdb_connection(self, purpose: str) -> Any:
        """A DuckDB connection on the workspace's own data, for work written in DuckDB's SQL (``purpose`` names
        it in the error other engines raise)."""
        from takt.errors import TaktError

        raise TaktError(f"{purpose} on DuckDB workspaces for now", code="unsupported")

    def try_lease(self, name: str) -> bool:
        """Whether this process holds (or has just taken) the named lease. Exactly one process at a time
        holds a lease; it is released when the holder closes its storage or dies. A single-process backend
        (DuckDB) always holds it."""
        return True

    def release_lease(self, name: str) -> None:  # noqa: B027 - optional for single-process backends
        """Give the lease up (another process may then take it)."""

    def wait_for_appends(self, timeout: float) -> bool:
        """Wait until another append may have committed, at most ``timeout`` seconds; ``False`` (at once) when
        the backend cannot tell (the caller polls)."""
        return False

    def lease_held_elsewhere(self, name: str) -> bool:
        """Whether another process holds the named lease now (without taking it). Never on a single-process
        backend."""
        return False

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
