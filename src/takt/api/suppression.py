"""The suppression list over HTTP (admin keys only). The list holds keyed hashes, never addresses.

* ``GET /v1/suppression?limit=&after=&kind=&reason=``: a page of entries (hash order; ``after`` is the last
  hash of the previous page).
* ``POST /v1/suppression/check`` ``{"kind": "email", "value": "ann@example.com"}``: is this contact point
  suppressed, and why (a POST, so the address never lands in a URL or an access log).
* ``POST /v1/suppression`` ``{"kind", "value", "reason"?}``: suppress a contact point (reason ``admin`` unless
  given), committed before the answer.

Translation only: the rules are :mod:`takt.policy.suppression_store`.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from takt.api.auth import bearer
from takt.api.context import ctx
from takt.api.policy import _body
from takt.api.responses import JSON
from takt.errors import invalid
from takt.policy.suppression_store import SUPPRESSION_REASONS, check, suppress, suppression_list, sync
from takt.policy.vocab import CONTACT_KINDS

ADMIN_KINDS = ("admin",)
MAX_PAGE = 1000


def _value(body: dict[str, Any]) -> tuple[str, str]:
    kind, value = body.get("kind"), body.get("value")
    errors = []
    if kind not in CONTACT_KINDS:
        errors.append({"field": "kind", "reason": f"one of {', '.join(CONTACT_KINDS)}"})
    if not isinstance(value, str) or not value.strip():
        errors.append({"field": "value", "reason": "a non-empty string is required"})
    if errors:
        raise invalid("give the contact point as kind and value", code="invalid_suppression", errors=errors)
    return str(kind), str(value)


async def list_entries(request: Request) -> Response:
    c = ctx(request)
    c.auth.require(bearer(request), ADMIN_KINDS)
    q = request.query_params
    unknown = sorted(set(q) - {"limit", "after", "kind", "reason"})
    if unknown:
        raise invalid(f"unknown query parameter {unknown[0]!r} (expected limit, after, kind, reason)")
    try:
        limit = int(q.get("limit", "100"))
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError
    except ValueError:
        raise invalid(f"limit must be a whole number from 1 to {MAX_PAGE}") from None
    kind, reason, after = q.get("kind"), q.get("reason"), q.get("after")
    if after is not None and (len(after) > 64 or any(ch not in "0123456789abcdef" for ch in after)):
        raise invalid("after must be a hash from the previous page (hex)")
    if kind is not None and kind not in CONTACT_KINDS:
        raise invalid(f"kind must be one of {', '.join(CONTACT_KINDS)}")
    if reason is not None and reason not in SUPPRESSION_REASONS:
        raise invalid(f"reason must be one of {', '.join(SUPPRESSION_REASONS)}")

    def read() -> tuple[list[Any], int]:
        sync(c.storage)
        store = suppression_list(c.storage)
        return store.entries(limit, after, kind, reason), store.count()

    entries, total = await run_in_threadpool(read)
    return JSON({"total": total, "entries": [e.to_json() for e in entries],
                 "next_after": entries[-1].hash if len(entries) == limit else None})


async def check_entry(request: Request) -> Response:
    c = ctx(request)
    c.auth.require(bearer(request), ADMIN_KINDS)
    kind, value = _value(await _body(request, c, ("kind", "value")))
    found = await run_in_threadpool(check, c.storage, kind, value)
    return JSON({"suppressed": bool(found), "entries": [e.to_json() for e in found]})


async def add_entry(request: Request) -> Response:
    c = ctx(request)
    key = c.auth.require(bearer(request), ADMIN_KINDS)
    body = await _body(request, c, ("kind", "value", "reason"))
    kind, value = _value(body)
    reason = body.get("reason", "admin")
    if reason not in SUPPRESSION_REASONS:
        raise invalid(f"reason must be one of {', '.join(SUPPRESSION_REASONS)}", code="invalid_suppression",
                      errors=[{"field": "reason", "reason": "unknown reason"}])
    entry = await run_in_threadpool(suppress, c.storage, kind, value, str(reason), c.clock(), f"admin:{key.name}")
    return JSON({"success": True, "entry": entry.to_json()})


def routes() -> list[Route]:
    return [
        Route("/v1/suppression", list_entries, methods=["GET"]),
        Route("/v1/suppression", add_entry, methods=["POST"]),
        Route("/v1/suppression/check", check_entry, methods=["POST"]),
    ]


def openapi_paths() -> dict[str, Any]:
    err = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    errors = {s: {"description": d, **err} for s, d in (
        ("400", "Invalid parameters or body."), ("401", "Missing or unknown key."), ("403", "Not an admin key."))}
    entry = {"type": "object", "required": ["kind", "hash", "reason", "scope", "at", "source"], "properties": {
        "kind": {"type": "string", "enum": list(CONTACT_KINDS)}, "hash": {"type": "string"},
        "reason": {"type": "string", "enum": list(SUPPRESSION_REASONS)},
        "scope": {"type": "string", "enum": ["marketing", "all"],
                  "description": "What the entry blocks: marketing only (unsubscribe, complaint) or every purpose."},
        "at": {"type": "string"},
        "source": {"type": "string"}}}
    point = {"kind": {"type": "string", "enum": list(CONTACT_KINDS)},
             "value": {"type": "string", "minLength": 1, "pattern": "\\S"}}

    def ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {"description": description, "content": {"application/json": {"schema": schema}}}

    def body(schema: dict[str, Any]) -> dict[str, Any]:
        return {"required": True, "content": {"application/json": {"schema": schema}}}

    return {
        "/v1/suppression": {
            "get": {"summary": "The suppression list: keyed hashes only (admin key)", "operationId": "suppression_list",
                    "security": [{"bearer": []}],
                    "parameters": [
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                                    "maximum": MAX_PAGE}},
                        {"name": "after", "in": "query", "schema": {"type": "string", "pattern": "^[0-9a-f]{0,64}$"}},
                        {"name": "kind", "in": "query", "schema": {"type": "string", "enum": list(CONTACT_KINDS)}},
                        {"name": "reason", "in": "query",
                         "schema": {"type": "string", "enum": list(SUPPRESSION_REASONS)}}],
                    "responses": {"200": ok("A page of entries", {
                        "type": "object", "required": ["total", "entries", "next_after"],
                        "properties": {"total": {"type": "integer"}, "entries": {"type": "array", "items": entry},
                                       "next_after": {"type": ["string", "null"]}}}), **errors}},
            "post": {"summary": "Suppress a contact point (admin key); committed before the answer",
                     "operationId": "suppress", "security": [{"bearer": []}],
                     "requestBody": body({"type": "object", "additionalProperties": False,
                                          "required": ["kind", "value"],
                                          "properties": {**point, "reason": {"type": "string",
                                                                             "enum": list(SUPPRESSION_REASONS)}}}),
                     "responses": {"200": ok("Suppressed", {"type": "object", "required": ["success", "entry"],
                                                            "properties": {"success": {"type": "boolean"},
                                                                           "entry": entry}}), **errors}}},
        "/v1/suppression/check": {"post": {
            "summary": "Is a contact point suppressed, and why (admin key)", "operationId": "suppression_check",
            "security": [{"bearer": []}],
            "requestBody": body({"type": "object", "additionalProperties": False, "required": ["kind", "value"],
                                 "properties": point}),
            "responses": {"200": ok("The entries for the contact point", {
                "type": "object", "required": ["suppressed", "entries"],
                "properties": {"suppressed": {"type": "boolean"}, "entries": {"type": "array", "items": entry}}}),
                **errors}}},
    }
