"""What every endpoint needs, built once per server."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from takt.api.auth import Authenticator
from takt.clock import Clock
from takt.ingest.segment import Limits
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
    extras: dict[str, Any] = field(default_factory=dict)

    def require_writer(self) -> GroupCommitWriter:
        assert self.writer is not None, "the writer starts with the app"
        return self.writer


def ctx(request: Request) -> ApiContext:
    return request.app.state.ctx  # type: ignore[no-any-return]
