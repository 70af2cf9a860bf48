"""The demo's outbox over HTTP, read-only (admin key: the messages hold addresses).

* ``GET /v1/outbox?limit=&before=``: the received messages, newest first, with their headers.
* ``GET /v1/outbox/{id}``: one message with its text and HTML.

Only a server started by ``takt demo`` has an outbox (``ApiContext.extras[OUTBOX]``); elsewhere 404 ``no_outbox``.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from takt.api.auth import bearer
from takt.api.context import ApiContext, ctx
from takt.api.openapi import error_doc as _err
from takt.api.openapi import ok_doc as _ok
from takt.api.responses import JSON
from takt.campaigns.delivery.outbox import Outbox
from takt.campaigns.delivery.smtp import PROFILE_HEADER
from takt.errors import TaktError, invalid
from takt.privacy.audit import arecord

OUTBOX = "outbox"
"""``ApiContext.extras`` key of the demo's :class:`~takt.campaigns.delivery.outbox.Outbox`."""
ADMIN_KINDS = ("admin",)
MAX_PAGE = 200


def _outbox(c: ApiContext) -> Outbox:
    found = c.extras.get(OUTBOX)
    if not isinstance(found, Outbox):
        raise TaktError("this server has no outbox (only `takt demo` runs one; elsewhere email leaves through "
                        "smtp.host)", code="no_outbox", status=404)
    return found


async def list_outbox(request: Request) -> Response:
    c = ctx(request)
    key = c.auth.require(bearer(request), ADMIN_KINDS)
    q = request.query_params
    unknown = sorted(set(q) - {"limit", "before"})
    if unknown:
        raise invalid(f"unknown query parameter {unknown[0]!r} (expected limit, before)")
    try:
        limit = int(q.get("limit", "50"))
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError
    except ValueError:
        raise invalid(f"limit must be a whole number from 1 to {MAX_PAGE}") from None
    outbox = _outbox(c)
    entries = await run_in_threadpool(outbox.page, limit, q.get("before"))
    # the messages hold addresses: a read of many people's data (one entry, before the answer leaves)
    await arecord(c.storage, c.clock(), key.id, "outbox.read", None)
    return JSON({"messages": [e.summary() for e in entries],
                 "next_before": entries[-1].id if len(entries) == limit else None})


async def outbox_message(request: Request) -> Response:
    c = ctx(request)
    key = c.auth.require(bearer(request), ADMIN_KINDS)
    entry = await run_in_threadpool(_outbox(c).get, request.path_params["message_id"])
    await arecord(c.storage, c.clock(), key.id, "outbox.read", entry.message.get(PROFILE_HEADER))
    return JSON(entry.to_json())


def routes() -> list[Route]:
    return [Route("/v1/outbox", list_outbox, methods=["GET"]),
            Route("/v1/outbox/{message_id}", outbox_message, methods=["GET"])]


def openapi_paths() -> dict[str, Any]:
    errors = {"401": _err("Missing or unknown key."), "403": _err("Not an admin key."),
              "404": _err("No outbox (not a demo server), or no such message.")}
    summary = {"type": "object", "required": ["id", "from", "to", "subject", "headers"],
               "properties": {"id": {"type": "string"}, "from": {"type": "string"},
                              "to": {"type": "array", "items": {"type": "string"}}, "subject": {"type": "string"},
                              "headers": {"type": "object", "additionalProperties": {"type": "string"}}}}
    full = {**summary, "properties": {**summary["properties"], "text": {"type": ["string", "null"]},  # type: ignore[dict-item]
                                      "html": {"type": ["string", "null"]}}}
    return {
        "/v1/outbox": {"get": {
            "summary": "The demo's outbox: emails takt sent, newest first, with headers (admin key)",
            "operationId": "outbox", "security": [{"bearer": []}],
            "parameters": [{"name": "limit", "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}},
                           {"name": "before", "in": "query", "schema": {"type": "string", "maxLength": 40}}],
            "responses": {"200": _ok("A page of messages", {
                "type": "object", "required": ["messages", "next_before"],
                "properties": {"messages": {"type": "array", "items": summary},
                               "next_before": {"type": ["string", "null"]}}}),
                "400": _err("Invalid parameters."), **errors}}},
        "/v1/outbox/{message_id}": {"get": {
            "summary": "One email in the demo's outbox, with its text and HTML (admin key)",
            "operationId": "outbox_message", "security": [{"bearer": []}],
            "parameters": [{"name": "message_id", "in": "path", "required": True,
                            "schema": {"type": "string", "maxLength": 40}}],
            "responses": {"200": _ok("The message", full), **errors}}},
    }
