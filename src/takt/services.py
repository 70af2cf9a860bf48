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
from typing import TYPE_CHECKING, Any, TypeVar, cast

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

_ATTACH = threading.Lock()
"""Guards only the attachment of a storage's services (no state of its own)."""


T = TypeVar("T")


class Services:
    """What one open workspace provides to every caller. Stores are built lazily, once (building one may create
    its table, under that store's own lock), then read without a lock; the runner, its live segments and the writer are set by whoever runs
    the projection (:meth:`runner_for`) or serves the API."""

    def __init__(self, storage: Storage, settings: Settings | None = None):
        self.storage = storage
        self._settings = settings
        self._locks = {name: threading.Lock() for name in (
            "suppression", "suppression_key", "contactability", "segments", "clv", "models", "audit")}
        """One lock per store, held while it is built (as before, when each module had its own guard)."""
        self._suppression: SuppressionList | None = None
        self._suppression_key: bytes | None = None
        self._contactability: ContactabilityTable | None = None
        self._segments: SegmentStore | None = None
        self._clv: ClvReader | None = None
        self._models: Registry | None = None
        self._audit: AuditLog | None = None
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
        self._others: dict[str, Any] = {}
        self._others_lock = threading.Lock()

    def store(self, name: str, make: Callable[[Storage], T]) -> T:
        """A store a package owns, built once per storage by ``make`` (which may create its table) under a lock,
        then returned as is: e.g. ``services_of(storage).store("campaigns.dead_letters", SqlDeadLetters)``. The
        package's accessor is the one place that names it."""
        found = self._others.get(name)
        if found is None:
            with self._others_lock:
                found = self._others.get(name)
                if found is None:
                    found = self._others[name] = make(self.storage)
        return cast(T, found)

    @property
    def settings(self) -> Settings:
        """The workspace's settings (for a storage opened without a workspace: defaults and ``TAKT_*``)."""
        if self._settings is None:
            from takt import settings as settings_mod

            self._settings = settings_mod.load(None)
        return self._settings

    # ---- built once, on first use (the fast path reads an attribute; building holds a lock)
    @property
    def suppression(self) -> SuppressionList:
        """The suppression list (:mod:`takt.policy.suppression_store`)."""
        if self._suppression is None:
            from takt.policy.suppression_store import SuppressionList

            with self._locks["suppression"]:
                if self._suppression is None:
                    self._suppression = SuppressionList(self.storage)
        return self._suppression

    @property
    def suppression_key(self) -> bytes:
        """The workspace's suppression key: it never changes, so it is read (or created) once."""
        if self._suppression_key is None:
            secret = self.suppression.secret()  # insert-if-absent: every caller reads the same key
            with self._locks["suppression_key"]:
                if self._suppression_key is None:
                    self._suppression_key = secret
        return self._suppression_key

    @property
    def contactability(self) -> ContactabilityTable:
        """The ``contactability`` table behind the segment function ``contactable(…)``."""
        if self._contactability is None:
            from takt.policy.segment_functions import ContactabilityTable

            with self._locks["contactability"]:
                if self._contactability is None:
                    self._contactability = ContactabilityTable(self.storage)
        return self._contactability

    @property
    def segments(self) -> SegmentStore:
        """The stored segment definitions (:mod:`takt.segments.store`)."""
        if self._segments is None:
            from takt.segments.store import SqlSegmentStore

            with self._locks["segments"]:
                if self._segments is None:
                    self._segments = SqlSegmentStore(self.storage)
        return self._segments

    @property
    def clv(self) -> ClvReader:
        """Reads one profile's stored CLV (:mod:`takt.models.clv.store`)."""
        if self._clv is None:
            from takt.models.clv.store import ClvReader

            with self._locks["clv"]:
                if self._clv is None:
                    self._clv = ClvReader(self.storage)
        return self._clv

    @property
    def models(self) -> Registry:
        """The model registry and its scores (:mod:`takt.models.registry`)."""
        if self._models is None:
            from takt.models.registry import Registry

            with self._locks["models"]:
                if self._models is None:
                    self._models = Registry(self.storage)
        return self._models

    @property
    def audit_if_built(self) -> AuditLog | None:
        """The audit log if something used it already (a request handler on the event loop then takes no
        worker thread to build it)."""
        return self._audit

    @property
    def audit(self) -> AuditLog:
        """The privacy audit log (:mod:`takt.privacy.audit`)."""
        if self._audit is None:
            from takt.privacy.audit import AuditLog

            with self._locks["audit"]:
                if self._audit is None:
                    self._audit = AuditLog(self.storage)
        return self._audit

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
