"""One workspace's services: the stores the domain needs, the profile runner and the writer, built in one place.

:meth:`takt.workspace.Workspace.open_storage` opens a workspace's storage and builds its :class:`Services` there
(:func:`attach`); the API app, the CLI commands, the worker and the demo all open storage that way, so they share
one object per open storage. Every store is created on first use (its table with it) and then kept here, on the
object, never in a module-level dictionary: closing and dropping the storage drops them all.

A storage opened without a workspace (tests, library use) gets its services on first request
(:func:`services_of`), with the default settings.

The older accessors (``suppression_list(storage)``, ``segment_store(storage)``, ``audit_log(storage)``,
``registry_of(storage)``, ``table_of(storage)``, ``attached(storage)``) remain as thin delegations to this object.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from takt.settings import Settings
from takt.storage.base import Storage

if TYPE_CHECKING:
    from takt.clock import Clock
    from takt.log.writer import GroupCommitWriter
    from takt.models.clv.store import ClvReader
    from takt.models.registry import Registry
    from takt.policy.segment_functions import ContactabilityTable
    from takt.policy.suppression_store import SuppressionList
    from takt.privacy.audit import AuditLog
    from takt.projections.runner import ProfileRunner
    from takt.segments.live import LiveSegments
    from takt.segments.store import SegmentStore

T = TypeVar("T")

_ATTACH = threading.Lock()
"""Guards only the attachment of a storage's services (no state of its own)."""


class Services:
    """What one open workspace provides to every caller. Stores are built lazily, once, under a lock of their
    own (building one may create its table); the runner, its live segments and the writer are set by whoever
    runs the projection (:meth:`runner_for`) or serves the API."""

    def __init__(self, storage: Storage, settings: Settings | None = None):
        self.storage = storage
        self._settings = settings
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._built: dict[str, Any] = {}
        self.runner: ProfileRunner | None = None
        """The runner that projects this storage's profiles in this process (the API server's, the worker's, a
        CLI command's), when one does: the profile JSON's ``segments`` section reads through it."""
        self.live: LiveSegments | None = None
        """The live segment membership attached to :attr:`runner` (:func:`takt.segments.live.attach_live`)."""
        self.writer: GroupCommitWriter | None = None
        """The group-commit writer of the server that serves this storage (``None`` outside ``takt serve``)."""
        self.suppression_sync = threading.Lock()
        """Serializes :func:`takt.policy.suppression_store.sync` within this process."""
        self.segment_definitions: Any = None
        """The parsed stored segments and the token they reflect (:mod:`takt.api.segments`)."""

    @property
    def settings(self) -> Settings:
        """The workspace's settings (for a storage opened without a workspace: defaults and ``TAKT_*``)."""
        if self._settings is None:
            from takt import settings as settings_mod

            self._settings = settings_mod.load(None)
        return self._settings

    # ---- built once, on first use
    def _once(self, name: str, build: Callable[[], T]) -> T:
        found = self._built.get(name)
        if found is not None:
            return found  # type: ignore[no-any-return]
        with self._locks_guard:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:
            found = self._built.get(name)
            if found is None:
                found = self._built[name] = build()
            return found  # type: ignore[no-any-return]

    @property
    def suppression(self) -> SuppressionList:
        """The suppression list (:mod:`takt.policy.suppression_store`)."""
        from takt.policy.suppression_store import SuppressionList

        return self._once("suppression", lambda: SuppressionList(self.storage))

    @property
    def suppression_key(self) -> bytes:
        """The workspace's suppression key: it never changes, so it is read (or created) once."""
        return self._once("suppression_key", lambda: self.suppression.secret())

    @property
    def contactability(self) -> ContactabilityTable:
        """The ``contactability`` table behind the segment function ``contactable(…)``."""
        from takt.policy.segment_functions import ContactabilityTable

        return self._once("contactability", lambda: ContactabilityTable(self.storage))

    @property
    def segments(self) -> SegmentStore:
        """The stored segment definitions (:mod:`takt.segments.store`)."""
        from takt.segments.store import SqlSegmentStore

        return self._once("segments", lambda: SqlSegmentStore(self.storage))

    @property
    def clv(self) -> ClvReader:
        """Reads one profile's stored CLV (:mod:`takt.models.clv.store`)."""
        from takt.models.clv.store import ClvReader

        return self._once("clv", lambda: ClvReader(self.storage))

    @property
    def models(self) -> Registry:
        """The model registry and its scores (:mod:`takt.models.registry`)."""
        from takt.models.registry import Registry

        return self._once("models", lambda: Registry(self.storage))

    @property
    def audit(self) -> AuditLog:
        """The privacy audit log (:mod:`takt.privacy.audit`)."""
        from takt.privacy.audit import AuditLog

        return self._once("audit", lambda: AuditLog(self.storage))

    # ---- the projection
    def runner_for(self, clock: Clock, **options: Any) -> ProfileRunner:
        """A new profile runner over this storage, configured from the settings (``options`` go to
        :class:`~takt.projections.runner.ProfileRunner`). It is not attached: see :attr:`runner`."""
        from takt.profiles.config import ProfileConfig
        from takt.projections.runner import ProfileRunner

        return ProfileRunner(self.storage, ProfileConfig.from_settings(self.settings), clock, **options)


def attach(storage: Storage, settings: Settings | None = None) -> Services:
    """Build the services of a freshly opened storage (the one place they are built; called by
    :meth:`takt.workspace.Workspace.open_storage`). A storage that already has services keeps them."""
    with _ATTACH:
        found: Services | None = getattr(storage, "services", None)
        if found is None:
            found = Services(storage, settings)
            storage.services = found
        return found


def services_of(storage: Storage) -> Services:
    """The services of an open storage (built with the default settings if it was opened without a workspace)."""
    found: Services | None = getattr(storage, "services", None)
    return found if found is not None else attach(storage)


def attached_services(storage: Any) -> Services | None:
    """The services of ``storage`` if it has any (never builds them: for readers that must not create tables)."""
    found = getattr(storage, "services", None)
    return found if isinstance(found, Services) else None
