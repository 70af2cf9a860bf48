"""How ``takt serve`` runs the app under uvicorn: timeouts for slow and partial requests (slowloris).

* **Headers**: a connection must deliver a request's complete headers within ``server.header_timeout_seconds``
  of connecting (or of the previous response, on a kept-alive connection); otherwise it is closed. uvicorn
  has no such limit of its own: its ``timeout_keep_alive`` only closes a connection that sends *nothing* after a
  response, and a client trickling a header line every few seconds would hold a connection for ever.
* **Idle kept-alive connections**: ``server.timeout_keep_alive_seconds`` (uvicorn's ``timeout_keep_alive``).
* **Header size**: h11 buffers at most ``MAX_INCOMPLETE_EVENT_BYTES`` of an incomplete request head.
* **Bodies**: the collection endpoints and the preference form read their body within
  ``server.body_timeout_seconds`` (:func:`takt.api.collect.read_capped`), else ``408 request_timeout``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from takt.settings import Settings

logger = logging.getLogger(__name__)

MAX_INCOMPLETE_EVENT_BYTES = 16 * 1024
"""Largest request head (request line and headers) h11 buffers before refusing the request."""


class _HeaderDeadline:
    """Mixin for a uvicorn HTTP protocol: close a connection whose request headers do not arrive in time."""

    header_timeout: float = 10.0
    _deadline: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        loop: asyncio.AbstractEventLoop = self.loop  # type: ignore[attr-defined]
        self._deadline = loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        transport: asyncio.Transport = self.transport  # type: ignore[attr-defined]
        if not transport.is_closing():
            logger.info("closing a connection whose request headers did not arrive within %.1f s",
                        self.header_timeout)
            transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        transport: asyncio.Transport = self.transport  # type: ignore[attr-defined]
        if not transport.is_closing():
            self._arm()  # the next request on this connection gets the same deadline


class TimedH11Protocol(_HeaderDeadline, H11Protocol):  # type: ignore[misc]
    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm()  # the headers are in (a body is the app's to time: read_capped)


def _timed_httptools() -> type[Any] | None:
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return None

    class TimedHttpToolsProtocol(_HeaderDeadline, HttpToolsProtocol):  # type: ignore[misc]
        def on_headers_complete(self) -> None:
            super().on_headers_complete()
            self._disarm()

    return TimedHttpToolsProtocol


def protocol_class(settings: Settings, prefer_httptools: bool = True) -> type[Any]:
    """The HTTP protocol ``takt serve`` uses: uvicorn's (httptools when installed, else h11) with the header
    deadline."""
    base = _timed_httptools() if prefer_httptools else None
    chosen: type[Any] = base if base is not None else TimedH11Protocol
    return type(chosen.__name__, (chosen,), {"header_timeout": float(settings["server.header_timeout_seconds"])})


def uvicorn_options(settings: Settings, prefer_httptools: bool = True) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run`` / ``uvicorn.Config``: protocol and timeouts."""
    return {
        "http": protocol_class(settings, prefer_httptools),
        "timeout_keep_alive": int(settings["server.timeout_keep_alive_seconds"]),
        "h11_max_incomplete_event_size": MAX_INCOMPLETE_EVENT_BYTES,
    }
