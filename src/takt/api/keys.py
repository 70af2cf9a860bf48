"""API keys managed while the server runs (admin keys only): what ``takt keys … --api`` uses when a server owns
the workspace.

* ``POST /v1/keys`` ``{"kind", "name", "source"?, "provenance"?, "trust"?}``: create a key; the answer holds its
  secret, the only time it is shown. A write key's trust defaults to ``public`` (a browser or app key); a
  backend or an import asks for ``server``.
* ``GET /v1/keys``: every key, never a secret.
* ``DELETE /v1/keys/{key_id}``: revoke a key; refused at once by this server (other servers of a PostgreSQL
  workspace within seconds). The last active admin key cannot be revoked: nobody could manage keys afterwards.

Translation only: the rules are :mod:`takt.keys`.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from takt.api.auth import bearer
from takt.api.context import ctx
from takt.api.openapi import _NOT_BLANK, error_doc, ok_doc
from takt.api.policy import _body
from takt.api.responses import JSON
from takt.errors import TaktError, invalid
from takt.events.model import PROVENANCE_RANK
from takt.keys import KINDS, WRITE_TRUSTS, ApiKey

ADMIN_KINDS = ("admin",)
FIELDS = ("kind", "name", "source", "provenance", "trust")
HTTP_DEFAULT_TRUST = "public"
"""A write key created through the API without a trust is a public one: the safe reading of a key that may end
up in a web page."""


def key_json(key: ApiKey) -> dict[str, Any]:
    """A key as the API shows it: everything but its secret (which is never stored)."""
    return {"id": key.id, "kind": key.kind, "name": key.name, "source": key.source, "provenance": key.provenance,
            "trust": key.trust, "active": key.active, "created_at": key.created_at.isoformat(),
            "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None}


def _opt_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(f"{name} must be a string", code="invalid_key", errors=[{"field": name, "reason": "a string"}])
    return value


async def create_key(request: Request) -> Response:
    c = ctx(request)
    c.auth.require(bearer(request), ADMIN_KINDS)
    body = await _body(request, c, FIELDS)
    kind, name = _opt_str(body, "kind"), _opt_str(body, "name")
    if kind is None or name is None:
        missing = [f for f, v in (("kind", kind), ("name", name)) if v is None]
        raise invalid(f"a key needs {' and '.join(missing)}", code="invalid_key",
                      errors=[{"field": f, "reason": "required"} for f in missing])
    trust = _opt_str(body, "trust")
    if kind == "write" and trust is None:
        trust = HTTP_DEFAULT_TRUST
    key, secret = await run_in_threadpool(
        lambda: c.storage.keys.create(kind, name, _opt_str(body, "source"), _opt_str(body, "provenance"),
                                      now=c.clock(), trust=trust))
    return JSON({"key": key_json(key), "secret": secret.reveal()}, status_code=201)


async def list_keys(request: Request) -> Response:
    c = ctx(request)
    c.auth.require(bearer(request), ADMIN_KINDS)
    keys = await run_in_threadpool(c.storage.keys.list)
    return JSON({"keys": [key_json(k) for k in keys]})


async def revoke_key(request: Request) -> Response:
    c = ctx(request)
    c.auth.require(bearer(request), ADMIN_KINDS)
    key_id = request.path_params["key_id"]

    def revoke() -> ApiKey:
        keys = c.storage.keys.list()
        target = [k for k in keys if k.id == key_id]
        admins = [k for k in keys if k.kind == "admin" and k.active]
        if target and target[0].kind == "admin" and target[0].active and len(admins) == 1:
            raise TaktError(f"key {key_id} is the last active admin key: create another admin key first",
                            code="last_admin_key", status=409)
        if not target:  # by id only here: a name in a URL could name several keys
            raise TaktError(f"no key with id {key_id!r}", code="not_found", status=404)
        return c.storage.keys.revoke(key_id, now=c.clock())

    key = await run_in_threadpool(revoke)
    c.auth.forget()  # refused from this request on, not after the cache's few seconds
    return JSON({"key": key_json(key)})


def routes() -> list[Route]:
    return [
        Route("/v1/keys", create_key, methods=["POST"]),
        Route("/v1/keys", list_keys, methods=["GET"]),
        Route("/v1/keys/{key_id}", revoke_key, methods=["DELETE"]),
    ]


_KEY = {"type": "object", "required": ["id", "kind", "name", "active", "created_at"], "properties": {
    "id": {"type": "string"}, "kind": {"type": "string", "enum": list(KINDS)}, "name": {"type": "string"},
    "source": {"type": ["string", "null"]}, "provenance": {"type": ["string", "null"]},
    "trust": {"type": ["string", "null"]}, "active": {"type": "boolean"},
    "created_at": {"type": "string"}, "revoked_at": {"type": ["string", "null"]}}}
_ERRORS = {"401": error_doc("Missing, unknown or revoked key."), "403": error_doc("Not an admin key.")}


def openapi_paths() -> dict[str, Any]:
    create_body = {"type": "object", "additionalProperties": False, "required": ["kind", "name"], "properties": {
        "kind": {"type": "string", "enum": list(KINDS)},
        "name": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": _NOT_BLANK},
        "source": {"type": "string", "maxLength": 200, "pattern": "^[^\\x00]*$",
                   "description": "Write keys: the source it sends for (default: the name)."},
        "provenance": {"type": "string", "enum": list(PROVENANCE_RANK),
                       "description": "Write keys: what its data is (default: observed)."},
        "trust": {"type": "string", "enum": list(WRITE_TRUSTS),
                  "description": "Write keys: public (browsers, apps; the default) or server (a secret key for "
                                 "backends and imports)."}}}
    return {
        "/v1/keys": {
            "post": {"summary": "Create an API key (admin key); its secret is in this answer only",
                     "operationId": "create_key", "security": [{"bearer": []}],
                     "requestBody": {"required": True, "content": {"application/json": {"schema": create_body}}},
                     "responses": {"201": ok_doc("Created", {
                         "type": "object", "required": ["key", "secret"],
                         "properties": {"key": _KEY, "secret": {"type": "string"}}}),
                         "400": error_doc("An invalid key request."), **_ERRORS}},
            "get": {"summary": "Every API key, never a secret (admin key)", "operationId": "list_keys",
                    "security": [{"bearer": []}],
                    "responses": {"200": ok_doc("The keys", {
                        "type": "object", "required": ["keys"],
                        "properties": {"keys": {"type": "array", "items": _KEY}}}), **_ERRORS}}},
        "/v1/keys/{key_id}": {"delete": {
            "summary": "Revoke an API key (admin key); refused from the next request on",
            "operationId": "revoke_key", "security": [{"bearer": []}],
            "parameters": [{"name": "key_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": ok_doc("Revoked", {"type": "object", "required": ["key"],
                                                   "properties": {"key": _KEY}}),
                          "404": error_doc("No key with this id."),
                          "409": error_doc("The last active admin key cannot be revoked."), **_ERRORS}}},
    }
