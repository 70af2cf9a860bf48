"""Privacy rights over HTTP (admin keys): export, erasure and the audit log. See ``docs/privacy.md``."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from takt.api.auth import bearer
from takt.api.context import ApiContext, ctx
from takt.api.events import _int_param
from takt.api.openapi import error_doc as _err
from takt.api.policy import ADMIN_KINDS, _body
from takt.api.responses import JSON
from takt.errors import TaktError, invalid
from takt.privacy.audit import ACTIONS, audit_log, record
from takt.privacy.rights import check_identifier, erase_person, export_person
from takt.projections.runner import ProfileRunner


def _runner(c: ApiContext) -> ProfileRunner:
    runner = c.extras.get("profiles")
    if runner is None:
        raise TaktError("profiles are not projected by this server", code="unavailable", status=503)
    return runner  # type: ignore[no-any-return]


async def export(request: Request) -> Response:
    c = ctx(request)
    key = c.auth.require(bearer(request), ADMIN_KINDS)
    identifier = check_identifier((await _body(request, c, ("identifier",))).get("identifier"))
    runner = _runner(c)
    now = c.clock()
    try:
        doc = await run_in_threadpool(export_person, c.storage, runner, identifier, now)
    except TaktError as e:
        await run_in_threadpool(record, c.storage, now, key.id, "privacy.export", None, e.code)
        raise
    await run_in_threadpool(audit_log(c.storage).record_many, now, key.id, "privacy.export",
                            [p["id"] for p in doc["profiles"]])
    return JSON(doc)


async def erase(request: Request) -> Response:
    c = ctx(request)
    key = c.auth.require(bearer(request), ADMIN_KINDS)
    identifier = check_identifier((await _body(request, c, ("identifier",))).get("identifier"))
    runner = _runner(c)
    now = c.clock()
    # audited inside: "requested" before it starts, its outcome after
    result = await run_in_threadpool(erase_person, c.storage, runner, identifier, now, key.id)
    return JSON({"success": True, **result})


async def audit(request: Request) -> Response:
    c = ctx(request)
    c.auth.require(bearer(request), ADMIN_KINDS)
    limit = _int_param(request, "limit", 100, 1, 1000)
    before_raw = request.query_params.get("before")
    before = _int_param(request, "before", 0, 1, 2**62) if before_raw else None
    action = request.query_params.get("action")
    if action is not None and action not in ACTIONS:
        raise invalid(f"query parameter 'action' must be one of {', '.join(ACTIONS)}, got {action!r}")
    subject = request.query_params.get("subject")
    entries = await run_in_threadpool(audit_log(c.storage).entries, limit, before, action, subject)
    nxt = entries[-1].id if len(entries) == limit else None
    return JSON({"entries": [e.to_json() for e in entries], "next_before": nxt})


def routes() -> list[Route]:
    return [
        Route("/v1/privacy/export", export, methods=["POST"]),
        Route("/v1/privacy/erase", erase, methods=["POST"]),
        Route("/v1/audit", audit, methods=["GET"]),
    ]





def openapi_paths() -> dict[str, Any]:
    body = {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "additionalProperties": False, "required": ["identifier"],
        "properties": {"identifier": {"type": "string", "minLength": 1,
                                      "description": "TYPE:VALUE (e.g. email:ann@example.com) or a profile id."}}}}}}
    common = {"400": _err("The body is invalid."), "401": _err("Missing, unknown or revoked key."),
              "403": _err("Only admin keys manage privacy."), "503": _err("Profiles are not projected by this server.")}
    exported = {"type": "object", "required": ["identifier", "profile_id", "exported_at", "profile", "profiles", "events",
                                                "consent", "messages"], "additionalProperties": True,
                "properties": {"identifier": {"type": "string"}, "profile_id": {"type": "string"},
                               "exported_at": {"type": "string"}, "profile": {"type": "object"},
                               "profiles": {"type": "array", "items": {"type": "object"},
                                            "description": "Every profile that carries the identifier, the "
                                                           "identifier's own first (`profile`)."},
                               "events": {"type": "array"}, "consent": {"type": "array"},
                               "messages": {"type": "array"}}}
    erased = {"type": "object", "required": ["success", "identifier", "profile_id", "profiles", "erased", "events", "keys",
                                              "suppressed", "erased_at"], "additionalProperties": False,
              "properties": {"success": {"const": True}, "identifier": {"type": "string"},
                             "profile_id": {"type": ["string", "null"]},
                             "profiles": {"type": "array", "items": {"type": "string"},
                                          "description": "Every profile erased: each one that carried the "
                                                         "identifier, also those identity kept apart."},
                             "erased": {"type": "boolean"},
                             "events": {"type": "integer"}, "keys": {"type": "integer"},
                             "suppressed": {"type": "integer"}, "erased_at": {"type": "string"}}}
    entry = {"type": "object", "required": ["id", "at", "key_id", "action", "subject", "outcome"],
             "properties": {"id": {"type": "integer"}, "at": {"type": "string"}, "key_id": {"type": "string"},
                            "action": {"type": "string", "enum": list(ACTIONS)},
                            "subject": {"type": ["string", "null"]}, "outcome": {"type": "string"}}}
    return {
        "/v1/privacy/export": {"post": {
            "summary": "Export everything held about one person (GDPR Art. 15/20): profile, events, consent, "
                       "messages. Audited.",
            "tags": ["privacy"], "requestBody": body,
            "responses": {"200": {"description": "The export", "content": {"application/json": {"schema": exported}}},
                          "404": _err("No profile has this identifier."), **common}}},
        "/v1/privacy/erase": {"post": {
            "summary": "Erase one person (GDPR Art. 17) by crypto-shredding; keeps only suppression hashes. "
                       "Idempotent. Audited.",
            "tags": ["privacy"], "requestBody": body,
            "responses": {"200": {"description": "What was erased",
                                  "content": {"application/json": {"schema": erased}}}, **common,
                          "503": _err("Profiles are not projected by this server (`unavailable`), the request could "
                                      "not be audited (`audit_unavailable`: nothing was erased), or the erasure "
                                      "failed midway (`erasure_incomplete`: retry; the retry finishes it).")}}},
        "/v1/audit": {"get": {
            "summary": "The audit log of PII reads, exports and erasures, newest first.",
            "tags": ["privacy"],
            "parameters": [
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                {"name": "before", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                {"name": "action", "in": "query", "schema": {"type": "string", "enum": list(ACTIONS)}},
                {"name": "subject", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": {"description": "A page of entries", "content": {"application/json": {"schema": {
                "type": "object", "required": ["entries", "next_before"],
                "properties": {"entries": {"type": "array", "items": entry},
                               "next_before": {"type": ["integer", "null"]}}}}}},
                "400": _err("A parameter is invalid."), "401": common["401"], "403": common["403"]}}},
    }
