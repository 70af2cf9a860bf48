"""Stored campaigns over HTTP: create, read (newest or a version), update, delete (archive), history.

* ``POST /v1/campaigns`` (admin): the campaign document as the body (JSON, or YAML with a ``yaml`` content
  type) → 201 with version 1. ``?allow_unknown_names=true`` skips checking names against the workspace.
* ``GET /v1/campaigns`` (read): every live campaign's newest version. ``GET /v1/campaigns/{name}``: one
  (``?version=n`` for an older one, archived or not); ``GET /v1/campaigns/{name}/versions``: its history.
* ``PUT /v1/campaigns/{name}`` (admin): a new version (the document's ``name`` must be ``{name}``; an unchanged
  document keeps the current version). ``DELETE /v1/campaigns/{name}`` (admin): archives it; the versions stay.

A document with problems is one ``422 invalid_campaign`` listing each with its JSON path (and line and column in
expressions and templates). The rules live in :mod:`takt.campaigns.document` and :mod:`takt.campaigns.store`;
this module only translates. Launching and the campaign's status are the orchestrator's routes.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from takt.api.auth import bearer
from takt.api.collect import read_capped
from takt.api.context import ApiContext, ctx
from takt.api.openapi import error_doc as _err
from takt.api.openapi import ok_doc as _ok
from takt.api.responses import JSON
from takt.campaigns.document import NAME_RE, Context, load, parse_document, workspace_context
from takt.campaigns.model import Campaign
from takt.campaigns.store import CampaignStore, CampaignVersion
from takt.errors import invalid
from takt.ingest.segment import decode_body

READ_KINDS = ("read", "admin")
ADMIN_KINDS = ("admin",)


def _store(c: ApiContext) -> CampaignStore:
    from takt.campaigns.store import campaign_store

    return campaign_store(c.storage)


def _name(request: Request) -> str:
    name = request.path_params["name"]
    if not NAME_RE.fullmatch(name):
        raise invalid(f"invalid campaign name {name[:80]!r}: 1 to 64 letters, digits, '_', '-' or '.', starting "
                      "with a letter or digit", code="invalid_campaign_name",
                      errors=[{"field": "name", "reason": "1-64 of A-Z a-z 0-9 _ - ., starting with a letter or digit"}])
    return name


def _flag(request: Request, name: str) -> bool:
    raw = request.query_params.get(name, "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise invalid(f"{name} must be true or false", errors=[{"field": name, "reason": "true or false"}])
    return raw in ("true", "1")


def _version(request: Request) -> int | None:
    raw = request.query_params.get("version")
    if raw is None:
        return None
    if not raw.isdigit() or not 0 < int(raw) < 2**31:
        raise invalid("version must be a positive whole number", errors=[{"field": "version", "reason": "1, 2, …"}])
    return int(raw)


async def _document(request: Request, c: ApiContext) -> Any:
    raw = await read_capped(request, c.limits.max_request_bytes)
    if "yaml" in request.headers.get("content-type", "").lower():
        if request.headers.get("content-encoding"):
            raise invalid("a YAML document is sent without Content-Encoding", code="invalid_request")
        return load(raw)
    return decode_body(raw, request.headers.get("content-encoding"), c.limits)


def _context(c: ApiContext, allow_unknown_names: bool) -> Context:
    """The workspace's names to check the document against (none with ``allow_unknown_names``)."""
    if allow_unknown_names:
        return Context()
    return workspace_context(c.storage, c.extras.get("profiles"), c.settings)


def _json(v: CampaignVersion) -> dict[str, Any]:
    name = v.name
    return {**v.to_json(), "links": {"self": f"/v1/campaigns/{name}", "versions": f"/v1/campaigns/{name}/versions"}}


async def create_campaign(request: Request) -> Response:
    c = ctx(request)
    key = c.auth.require(bearer(request), ADMIN_KINDS)
    data = await _document(request, c)
    allow = _flag(request, "allow_unknown_names")

    def create() -> CampaignVersion:
        campaign = parse_document(data, _context(c, allow))
        return _store(c).create(campaign, now=c.clock(), by=key.id)

    v = await run_in_threadpool(create)
    return JSON(_json(v), status_code=201, headers={"Location": f"/v1/campaigns/{v.name}"})


async def list_campaigns(request: Request) -> Response:
    c = ctx(request)
    c.auth.require(bearer(request), READ_KINDS)
    rows = await run_in_threadpool(_store(c).list)
    return JSON({"campaigns": [_json(v) for v in rows]})


async def get_campaign(request: Request) -> Response:
    c = ctx(request)
    c.auth.require(bearer(request), READ_KINDS)
    name, version = _name(request), _version(request)
    return JSON(_json(await run_in_threadpool(_store(c).get, name, version)))


async def update_campaign(request: Request) -> Response:
    c = ctx(request)
    key = c.auth.require(bearer(request), ADMIN_KINDS)
    name = _name(request)
    data = await _document(request, c)
    allow = _flag(request, "allow_unknown_names")
    if isinstance(data, dict) and data.get("name", name) != name:
        raise invalid(f"the document's name {str(data['name'])[:80]!r} is not {name!r} (to rename, create the "
                      "campaign under its new name)", code="invalid_campaign",
                      errors=[{"field": "name", "reason": f"must be {name!r}"}])
    if isinstance(data, dict):
        data = {"name": name, **data}

    def update() -> CampaignVersion:
        store = _store(c)
        store.get(name)  # 404 before a validation of a campaign that does not exist
        campaign: Campaign = parse_document(data, _context(c, allow))
        return store.update(campaign, now=c.clock(), by=key.id)

    return JSON(_json(await run_in_threadpool(update)))


async def delete_campaign(request: Request) -> Response:
    c = ctx(request)
    key = c.auth.require(bearer(request), ADMIN_KINDS)
    name = _name(request)
    v = await run_in_threadpool(lambda: _store(c).delete(name, now=c.clock(), by=key.id))
    return JSON(_json(v))


async def campaign_versions(request: Request) -> Response:
    c = ctx(request)
    c.auth.require(bearer(request), READ_KINDS)
    name = _name(request)
    rows = await run_in_threadpool(_store(c).versions, name)
    return JSON({"name": name, "versions": [v.to_json() for v in rows]})


def routes() -> list[Route]:
    return [
        Route("/v1/campaigns", create_campaign, methods=["POST"]),
        Route("/v1/campaigns", list_campaigns, methods=["GET"]),
        Route("/v1/campaigns/{name}", get_campaign, methods=["GET"]),
        Route("/v1/campaigns/{name}", update_campaign, methods=["PUT"]),
        Route("/v1/campaigns/{name}", delete_campaign, methods=["DELETE"]),
        Route("/v1/campaigns/{name}/versions", campaign_versions, methods=["GET"]),
    ]


def openapi_paths() -> dict[str, Any]:
    version: dict[str, Any] = {
        "type": "object", "additionalProperties": True,
        "required": ["name", "version", "document", "created_at", "archived"],
        "properties": {"name": {"type": "string"}, "version": {"type": "integer"},
                       "document": {"type": "object", "description": "The campaign document as stored."},
                       "created_at": {"type": "string"}, "created_by": {"type": "string", "nullable": True},
                       "archived": {"type": "boolean"}}}
    document: dict[str, Any] = {
        "type": "object", "additionalProperties": True, "required": ["name", "intent", "audience", "trigger",
                                                                     "channels"],
        "description": "A campaign document (docs/campaigns.md); also accepted as YAML (Content-Type: "
                       "application/yaml).",
        "properties": {"name": {"type": "string"}, "intent": {"type": "string"},
                       "audience": {"oneOf": [{"type": "string"}, {"type": "object"}]},
                       "trigger": {"type": "object"}, "channels": {"type": "array", "items": {"type": "string"}},
                       "message": {"type": "object"}, "holdout": {"type": "number"}, "goal": {"type": "object"},
                       "priority": {"type": "integer"}, "steps": {"type": "array", "items": {"type": "object"}}}}
    auth = {"401": _err("Missing, unknown or revoked key."), "403": _err("The key's kind may not use this endpoint.")}
    bad = {"400": _err("Invalid name, body or parameter.")}
    invalid_doc = {"422": _err("The document has problems (code invalid_campaign): each with its JSON path, and "
                               "line and column in expressions and templates.")}
    missing = {"404": _err("No such campaign (or version), or it was deleted.")}
    conflict = {"409": _err("The campaign exists, or changed concurrently.")}
    pname = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    allow = {"name": "allow_unknown_names", "in": "query", "schema": {"type": "boolean"},
             "description": "Skip checking trait, event, interest and segment names against the workspace."}
    pversion = {"name": "version", "in": "query", "schema": {"type": "integer", "minimum": 1},
                "description": "An older version (default: the newest)."}
    sec: list[dict[str, list[str]]] = [{"bearer": []}]
    body = {"required": True, "content": {"application/json": {"schema": document},
                                          "application/yaml": {"schema": {"type": "string"}}}}
    return {
        "/v1/campaigns": {
            "post": {"summary": "Create a campaign (version 1)", "operationId": "create_campaign", "security": sec,
                     "parameters": [allow], "requestBody": body,
                     "responses": {"201": _ok("The campaign's first version", version), **bad, **auth, **conflict,
                                   **invalid_doc}},
            "get": {"summary": "List campaigns", "operationId": "list_campaigns", "security": sec,
                    "responses": {"200": _ok("Every live campaign's newest version", {
                        "type": "object", "required": ["campaigns"],
                        "properties": {"campaigns": {"type": "array", "items": version}}}), **auth}},
        },
        "/v1/campaigns/{name}": {
            "get": {"summary": "A campaign's newest (or a given) version", "operationId": "get_campaign",
                    "security": sec, "parameters": [pname, pversion],
                    "responses": {"200": _ok("The campaign version", version), **bad, **auth, **missing}},
            "put": {"summary": "Change a campaign (a new version)", "operationId": "update_campaign",
                    "security": sec, "parameters": [pname, allow], "requestBody": body,
                    "responses": {"200": _ok("The new (or unchanged) newest version", version), **bad, **auth,
                                  **missing, **conflict, **invalid_doc}},
            "delete": {"summary": "Delete (archive) a campaign; its versions stay", "operationId": "delete_campaign",
                       "security": sec, "parameters": [pname],
                       "responses": {"200": _ok("The archiving version", version), **bad, **auth, **missing,
                                     **conflict}},
        },
        "/v1/campaigns/{name}/versions": {
            "get": {"summary": "A campaign's history", "operationId": "campaign_versions", "security": sec,
                    "parameters": [pname],
                    "responses": {"200": _ok("Every version, oldest first", {
                        "type": "object", "required": ["name", "versions"],
                        "properties": {"name": {"type": "string"}, "versions": {"type": "array", "items": version}}}),
                        **bad, **auth, **missing}},
        },
    }
