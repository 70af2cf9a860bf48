"""What every endpoint needs, built once per server."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from starlette.requests import Request

from takt.api.auth import Authenticator
from takt.clock import Clock
from takt.errors import invalid
from takt.ingest.segment import Limits
from takt.ingest.window import Implausible, TimeWindow
from takt.log.writer import GroupCommitWriter
from takt.settings import Settings
from takt.storage.base import Storage


@dataclass
class ApiContext:
    storage: Storage
    settings: Settings
    clock: Clock
    auth: Authenticator
    limits: Limits
    writer: GroupCommitWriter | None = None
    verification_secret: str | None = field(default=None, repr=False)
    """The workspace's identity-verification secret (:mod:`takt.ingest.verification`)."""
    views: TimeWindow = field(default_factory=lambda: TimeWindow(future=timedelta(days=3660)))
    """Plausible ``at`` of a read (``api.max_at_future_days`` ahead; ``limits.window`` for what is stored)."""
    extras: dict[str, Any] = field(default_factory=dict)

    def require_writer(self) -> GroupCommitWriter:
        assert self.writer is not None, "the writer starts with the app"
        return self.writer


def ctx(request: Request) -> ApiContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


def query_at(raw: str, c: ApiContext) -> datetime:
    """The ``?at=`` query parameter: an ISO 8601 time inside the plausible window, else a 400 naming why."""
    try:
        return c.views.parse(raw, c.clock(), "at")
    except Implausible as e:
        raise invalid(f"query parameter 'at' must be a plausible ISO 8601 time: {e.reason}",
                      errors=[{"field": "at", "reason": e.reason}]) from None
