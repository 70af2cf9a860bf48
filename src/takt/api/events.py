"""Reading the log over HTTP (read or admin key): what ``takt events`` uses when a server owns the workspace."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from takt.api.auth import bearer
from takt.api.context import ctx
from takt.api.responses import JSON
from takt.errors import invalid
from takt.privacy.audit import record as audit

READ_KINDS = ("read", "admin")


def _int_param(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid(f"query parameter {name!r} must be an integer, got {raw!r}") from None
    if not lo <= value <= hi:
        raise invalid(f"query parameter {name!r} must be between {lo} and {hi}, got {value}")
    return value


async def list_events(request: Request) -> Response:
    c = ctx(request)
    key = c.auth.require(bearer(request), READ_KINDS)
    after = _int_param(request, "after", 0, 0, 2**62)
    limit = _int_param(request, "limit", 1000, 1, 10_000)
    rows = c.storage.log.read(after=after, limit=limit)
    # the log holds everybody's personal data (decrypted here): audited before it is returned
    await run_in_threadpool(audit, c.storage, c.clock(), key.id, "events.read", None)
    return JSON({
        "events": [{"position": r.position, **r.event.to_record()} for r in rows],
        "next_after": rows[-1].position if rows else after,
    })


async def count_events(request: Request) -> Response:
    c = ctx(request)
    c.auth.require(bearer(request), READ_KINDS)
    from takt.events.counts import event_counts

    return JSON(await run_in_threadpool(event_counts, c.storage.log))


def routes() -> list[Route]:
    return [
        Route("/v1/events", list_events, methods=["GET"]),
        Route("/v1/events/count", count_events, methods=["GET"]),
    ]
