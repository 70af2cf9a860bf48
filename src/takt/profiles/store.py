"""Where profile state lives: one row per profile and one per identity cluster, with the log position they
reflect.

The :class:`~takt.profiles.projector.Projector` keeps a bounded cache of profile states and loads the others
from here; the runner writes what changed (:meth:`Projector.take_changes`) in one transaction together with
the position it reflects, so a restarted process continues from that position without reading every profile
back. Rows:

* ``profile_states (id, position, data)``: :meth:`ProfileState.to_blob` (positions, event keys, then JSON).
* ``identity_clusters (id, data, idx)``: :meth:`IdentityGraph.record` as JSON, and what must be in memory
  for the whole graph (its merges: redirects of absorbed ids, the merge index; its members' separations) as a
  small JSON ``idx`` read at start without the rest.
* ``identity_members (identifier, cluster)``: which cluster holds an identifier (looked up per chunk of events).
* ``profile_store_meta (name, position, format)``: the position every row reflects; ``format`` changes when
  the row layout does (a store in another format is treated as empty: the projection is rebuilt).

Each backend creates its store with the storage (``storage.profiles``): :mod:`takt.storage.duckdb_profiles`,
:mod:`takt.storage.pg_profiles`. The store holds no rules: what a row
means is the projector's business.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from takt.settings import register

STORE_FORMAT = 3
META_NAME = "profiles"
LOAD_BATCH = 2_000
DEFAULT_CACHE_SIZE = 20_000


def _at_least_100(v: Any) -> None:
    if v < 100:
        raise ValueError("must be at least 100")


register("profiles.cache_size", DEFAULT_CACHE_SIZE,
         "Profile states the server keeps in memory (least recently used leave first; the others are read from "
         "the workspace's profile store when needed). About 10-30 KB each.", check=_at_least_100)


@dataclass
class StoreWrite:
    """One transaction's worth of changes: rows to (re)write, rows to delete, and the position they reflect."""

    position: int
    profiles: list[tuple[str, bytes]] = field(default_factory=list)
    removed_profiles: list[str] = field(default_factory=list)
    clusters: list[tuple[str, bytes, bytes]] = field(default_factory=list)
    """(id, row, idx) per changed cluster."""
    removed_clusters: list[str] = field(default_factory=list)
    members: list[tuple[str, str]] = field(default_factory=list)
    """(identifier, cluster id) of every member of a changed cluster (their rows are replaced)."""
    replace: bool = False
    """Delete every row first (the write holds the whole state)."""
    keys: list[tuple[str, str, bytes]] = field(default_factory=list)
    """(subject id, key id, wrapped key) rows for ``privacy_subject_keys``: keys the rows are sealed under,
    made for this write (:mod:`takt.profiles.sealed`)."""
    tables: Any = None
    """The segment contract tables' changes (:class:`takt.projections.facts.TablesWrite`), written in the same
    transaction; ``None`` leaves them as they are."""


class ProfileStore(ABC):
    """Per-row profile and identity state with the log position it reflects."""

    @abstractmethod
    def position(self) -> int | None:
        """The position the rows reflect; ``None`` when nothing was written (or in another format)."""

    @abstractmethod
    def load(self, ids: Sequence[str]) -> dict[str, bytes]:
        """The state rows of these profile ids (ids without a row are left out)."""

    def load_keyed(self, ids: Sequence[str], subjects: Sequence[str]
                   ) -> dict[str, tuple[bytes, tuple[str, bytes] | None]]:
        """:meth:`load` together with each row's ``privacy_subject_keys`` row (``subjects[i]`` is the subject id
        of ``ids[i]``; ``None`` when it has none) in one query: a cold read of a sealed row costs one round trip,
        not two (:mod:`takt.profiles.sealed`)."""
        raise NotImplementedError

    @abstractmethod
    def profile_ids(self) -> list[str]:
        """Ids of every stored profile state, sorted."""

    @abstractmethod
    def profiles(self, batch: int = LOAD_BATCH) -> Iterator[tuple[str, bytes]]:
        """Every profile state row, by id."""

    @abstractmethod
    def changed_since(self, position: int) -> list[str]:
        """Ids of the profile state rows written at a position after ``position`` (sorted): every profile an
        event after ``position`` changed, once it is written (a row carries the position of the write that
        last changed it, never less than the event's). Profiles deleted since are not in it."""

    @abstractmethod
    def clusters(self, batch: int = LOAD_BATCH) -> Iterator[bytes]:
        """Every identity cluster row."""

    @abstractmethod
    def cluster_index(self, batch: int = LOAD_BATCH) -> Iterator[tuple[str, bytes]]:
        """(id, idx) of every identity cluster: what the graph keeps in memory."""

    @abstractmethod
    def load_clusters(self, ids: Sequence[str]) -> dict[str, bytes]:
        """The rows of these cluster ids (ids without a row are left out)."""

    @abstractmethod
    def members(self, identifiers: Sequence[str]) -> dict[str, str]:
        """identifier → cluster id, for the identifiers some cluster holds."""

    @abstractmethod
    def write(self, w: StoreWrite) -> None:
        """Apply ``w`` atomically: all of it, with its position, or nothing."""

    @abstractmethod
    def clear(self) -> None:
        """Forget everything (a rebuild starts from position 0)."""

    @abstractmethod
    def count(self) -> int:
        """How many profile state rows there are."""

    has_tables = False
    """Whether the store keeps the segment contract tables beside its rows (the workspace stores do)."""

    def tables_position(self) -> int | None:
        """The position the segment contract tables reflect (``None``: not built, or no tables)."""
        return None

    def write_tables(self, w: Any) -> None:
        """Apply a :class:`takt.projections.facts.TablesWrite` alone, atomically (a full build)."""
        raise NotImplementedError("this profile store keeps no segment tables")


TABLES = ("profile_states", "identity_clusters", "identity_members", "profile_store_meta")
"""The store's tables (each engine creates them under ``storage/``)."""
