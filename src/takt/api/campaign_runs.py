"""Running campaigns over HTTP: ``POST /v1/campaigns/{name}/launch|pause|resume|stop``,
``GET /v1/campaigns/{name}/status`` and ``GET /v1/profiles/{id}/messages`` (each message with why it was, or was
not, allowed). The orchestrator (:mod:`takt.campaigns.orchestrator`) is the server's, in
``ApiContext.extras[ORCHESTRATOR]``; a server without one answers ``409 campaigns_not_running``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from takt.api.auth import bearer
from takt.api.context import ApiContext, ctx
from takt.api.openapi import error_doc as _err
from takt.api.openapi import ok_doc as _ok
from takt.api.policy import _body, _entry, _settled
from takt.api.responses import JSON
from takt.campaigns.orchestrator import Orchestrator
from takt.campaigns.status import campaign_status, person_messages
from takt.errors import TaktError, invalid
from takt.privacy.audit import record as audit

ORCHESTRATOR = "campaign_orchestrator"
READ_KINDS = ("read", "admin")
ADMIN_KINDS = ("admin",)
ACTIONS = ("launch", "pause", "resume", "stop")


def orchestrator(c: ApiContext) -> Orchestrator:
    orch = c.extras.get(ORCHESTRATOR)
    if not isinstance(orch, Orchestrator):
        raise TaktError("this server runs no campaign orchestrator (no delivery channel is configured; see "
                        "docs/campaigns-running.md)", code="campaigns_not_running", status=409)
    return orch


async def act(request: Request, action: str) -> Response:
    c = ctx(request)
    c.auth.require(bearer(request), ADMIN_KINDS)
    name = request.path_params["name"]
    body = await _body(request, c, ("version",)) if await request.body() else {}
    version = body.get("version")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool) or version < 1):
        raise invalid("version must be a positive integer", errors=[{"field": "version", "reason": "an integer"}])
    orch = orchestrator(c)
    if action == "launch":
        await run_in_threadpool(orch.launch_named, name, version)
    else:
        await run_in_threadpool(orch.control, name, action)
    return JSON(await run_in_threadpool(campaign_status, orch, name))


async def status(request: Request) -> Response:
    c = ctx(request)
    c.auth.require(bearer(request), READ_KINDS)
    return JSON(await run_in_threadpool(campaign_status, orchestrator(c), request.path_params["name"]))


async def messages(request: Request) -> Response:
    c = ctx(request)
    key = c.auth.require(bearer(request), READ_KINDS)
    runner = await _settled(c)
    entry = await _entry(c, runner, request.path_params["profile_id"])
    orch = orchestrator(c)
    pid = entry.state.id

    def read() -> list[dict[str, Any]]:
        found = person_messages(orch, pid)
        # the reasons name contact points: a read of personal data, in the audit log before it is returned
        audit(c.storage, c.clock(), key.id, "profile.messages", pid)
        return found

    found = await run_in_threadpool(read)
    return JSON({"profile_id": pid, "messages": found, "count": len(found)})


def _action(action: str) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await act(request, action)

    endpoint.__name__ = f"campaign_{action}"
    return endpoint


def routes() -> list[Route]:
    return [
        Route("/v1/campaigns/{name}/status", status, methods=["GET"]),
        *(Route(f"/v1/campaigns/{{name}}/{action}", _action(action), methods=["POST"]) for action in ACTIONS),
        Route("/v1/profiles/{profile_id}/messages", messages, methods=["GET"]),
    ]


def openapi_paths() -> dict[str, Any]:
    auth = {"401": _err("Missing, unknown or revoked key."), "403": _err("The key's kind may not use this endpoint.")}
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    count = {"type": "integer", "minimum": 0}
    status_doc = _ok("The campaign run: enrolled, waiting, sent, skipped by reason code, failed, unknown, "
                     "conversions.", {"type": "object", "properties": {
                         "campaign": {"type": "string"}, "version": count, "status": {"type": "string"},
                         "enrolled": count, "holdout": count, "waiting": count, "done": count, "sent": count,
                         "failed": count, "unknown": count,
                         "skipped": {"type": "object", "additionalProperties": count},
                         "conversions": {"type": ["integer", "null"]}}})
    body = {"required": False, "content": {"application/json": {"schema": {
        "type": "object", "additionalProperties": False,
        "properties": {"version": {"type": "integer", "minimum": 1,
                                   "description": "The version to launch (default: the newest)."}}}}}}
    out: dict[str, Any] = {}
    for action in ACTIONS:
        out[f"/v1/campaigns/{{name}}/{action}"] = {"post": {
            "summary": f"{action.capitalize()} a campaign (admin key)", "operationId": f"campaign_{action}",
            "security": [{"bearer": []}], "parameters": [name], "requestBody": body,
            "responses": {"200": status_doc, "400": _err("An invalid body."), "404": _err("No such campaign."),
                          "409": _err("Not possible in the campaign's state, or no orchestrator runs here."),
                          **auth}}}
    out["/v1/campaigns/{name}/status"] = {"get": {
        "summary": "What a campaign run did (read or admin key)", "operationId": "campaign_status",
        "security": [{"bearer": []}], "parameters": [name],
        "responses": {"200": status_doc, "404": _err("Never launched."), "409": _err("No orchestrator runs here."),
                      **auth}}}
    out["/v1/profiles/{profile_id}/messages"] = {"get": {
        "summary": "A person's campaign messages, each with why it was (not) allowed (read or admin key)",
        "operationId": "profile_messages", "security": [{"bearer": []}],
        "parameters": [{"name": "profile_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": _ok("The messages.", {"type": "object", "properties": {
            "profile_id": {"type": "string"}, "count": {"type": "integer"},
            "messages": {"type": "array", "items": {"type": "object"}}}}), "404": _err("No such profile."),
            "400": _err("A malformed identifier."), "409": _err("No orchestrator runs here."),
            "503": _err("The read could not be audited."), **auth}}}
    return out
