"""The Segment-compatible collection API: ``/v1/track`` … ``/v1/batch`` and analytics.js's short paths."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from takt.api.auth import basic_username
from takt.api.context import ctx
from takt.api.responses import success
from takt.errors import TaktError, too_large
from takt.ingest.segment import KIND_ALIASES, Source, decode_body_depth, events_from_body

WRITE_KINDS = ("write",)


async def read_capped(request: Request, cap: int, timeout: float | None = None) -> bytes:
    """The raw body, refused as soon as it passes ``cap`` bytes (never all read into memory), and with
    ``408 request_timeout`` when it has not all arrived within ``timeout`` seconds (a slow or stalled client)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > cap:
        raise too_large(f"request body is {declared} bytes; the limit is {cap}")
    chunks: list[bytes] = []
    size = 0
    try:
        # one timer for the whole body (asyncio.timeout: no task per chunk, unlike wait_for)
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > cap:
                    raise too_large(f"request body exceeds the limit of {cap} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise TaktError(f"the request body did not arrive within {timeout:g} s", code="request_timeout",
                        status=408, headers={"Connection": "close"}) from None
    return b"".join(chunks)


def _collector(kind: str):  # type: ignore[no-untyped-def]
    async def collect(request: Request) -> Response:
        c = ctx(request)
        received_at = c.clock()
        key_raw = basic_username(request)
        key = c.auth.require(key_raw, WRITE_KINDS) if key_raw else None
        # Bodies may be gzip'd: allow the compressed form a little slack over the decompressed limit.
        raw = await read_capped(request, c.limits.max_request_bytes + c.limits.max_request_bytes // 10 + 1024,
                                c.settings["server.body_timeout_seconds"])
        body, depth = decode_body_depth(raw, request.headers.get("content-encoding"), c.limits)
        if key is None:
            wk = body.get("writeKey") if isinstance(body, dict) else None
            key = c.auth.require(wk if isinstance(wk, str) else None, WRITE_KINDS)
        assert key.source is not None and key.provenance is not None
        # the key's trust: a public key's events are claims, verified only by a valid context.userHash
        trust = key.trust or "server"
        source = Source(key.source, key.provenance, trust,
                        verification_secret=c.verification_secret if trust == "public" else None)
        events = events_from_body(body, kind, source, received_at, c.limits, body_depth=depth)
        await c.require_writer().submit(events)
        return success()

    collect.__name__ = f"collect_{kind}"
    return collect


def routes() -> list[Route]:
    out: list[Route] = []
    for path, kind in KIND_ALIASES.items():
        out.append(Route(f"/v1/{path}", _collector(kind), methods=["POST"]))
    batch = _collector("batch")
    for path in ("/v1/batch", "/v1/b", "/b", "/v1/import"):
        out.append(Route(path, batch, methods=["POST"]))
    return out
