"""The OpenAPI document of the HTTP API, served at ``/openapi.json``.

Kept as data next to the routes it describes; ``tests/test_openapi.py`` checks that every route is documented
and schemathesis checks that responses match it.
"""

from __future__ import annotations

from typing import Any

from takt import __version__
from takt.text import article

_OBJ: dict[str, Any] = {"type": "object", "additionalProperties": True}
_NO_NUL = "^[^\\x00]*$"  # PostgreSQL text cannot hold NUL: ids and event names never contain it
_ID: dict[str, Any] = {"type": "string", "maxLength": 1024, "pattern": _NO_NUL}
_REQUIRED_ID: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 1024, "pattern": _NO_NUL}
_TIME: dict[str, Any] = {"type": "string", "format": "date-time", "description": (
    "ISO 8601. As `timestamp`, between `ingest.earliest_time` (1970) and `ingest.max_future_hours` (24) after "
    "receipt, else the event is refused (400); as `originalTimestamp`/`sentAt`, a device's clock, kept as sent "
    "(a time derived from them outside that window becomes the time of receipt). docs/api.md, *Plausible times*.")}
# No NUL, and at least one character that is not whitespace (as Python's str.strip sees it: \s plus
# \x1c-\x1f and \x85).
_NOT_BLANK = "^[^\\x00]*[^\\s\\x00\\x1c-\\x1f\\x85][^\\x00]*$"

_COMMON_PROPS: dict[str, Any] = {
    "messageId": {"type": "string", "maxLength": 100, "pattern": _NO_NUL},
    "userId": _ID,
    "anonymousId": _ID,
    "context": _OBJ,
    "integrations": _OBJ,
    "timestamp": _TIME,
    "originalTimestamp": _TIME,
    "sentAt": _TIME,
    "writeKey": {"type": "string"},
}


def _call(kind: str, required: list[str], extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "description": f"A Segment `{kind}` call. Needs `userId` or `anonymousId`.",
        "properties": {**_COMMON_PROPS, "type": {"type": "string", "enum": [kind]}, **extra},
        "required": required,
        "anyOf": [{"required": ["userId"], "properties": {"userId": {"minLength": 1}}},
                  {"required": ["anonymousId"], "properties": {"anonymousId": {"minLength": 1}}}],
        "additionalProperties": True,
    }


CALLS: dict[str, dict[str, Any]] = {
    "track": _call("track", ["event"], {
        "event": {"type": "string", "minLength": 1, "maxLength": 512, "pattern": _NOT_BLANK}, "properties": _OBJ}),
    "identify": _call("identify", [], {"traits": _OBJ}),
    "page": _call("page", [], {"name": {"type": "string"}, "properties": _OBJ}),
    "screen": _call("screen", [], {"name": {"type": "string"}, "properties": _OBJ}),
    "group": _call("group", ["groupId"], {"groupId": _REQUIRED_ID, "traits": _OBJ}),
    "alias": _call("alias", ["previousId", "userId"], {"previousId": _REQUIRED_ID, "userId": _REQUIRED_ID}),
}

ERROR = {
    "type": "object",
    "properties": {
        "success": {"type": "boolean", "enum": [False]},
        "code": {"type": "string"},
        "message": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"index": {"type": "integer"}, "field": {"type": "string"},
                               "reason": {"type": "string"}},
                "required": ["reason"],
            },
        },
    },
    "required": ["success", "code", "message"],
}


def error_doc(desc: str) -> dict[str, Any]:
    """An OpenAPI response in the one error shape (``components.schemas.Error``)."""
    return {"description": desc, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def ok_doc(desc: str, schema: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI JSON response with ``schema``."""
    return {"description": desc, "content": {"application/json": {"schema": schema}}}


_err = error_doc


_RETRY_HEADER = {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds to wait."}}

COLLECT_RESPONSES = {
    "200": {
        "description": "Stored durably (committed before this answer).",
        "content": {"application/json": {"schema": {
            "type": "object", "properties": {"success": {"type": "boolean", "enum": [True]}},
            "required": ["success"]}}},
    },
    "400": _err("Malformed JSON, an invalid event, or a limit exceeded. Nothing was stored."),
    "401": _err("Missing, unknown or revoked write key."),
    "403": _err("The key is not a write key."),
    "408": _err("The body did not arrive within server.body_timeout_seconds (`request_timeout`); nothing was "
                "stored."),
    "429": {**_err("Overloaded: retry after the given seconds."), "headers": _RETRY_HEADER},
    "503": {**_err("Storage unavailable; nothing was acknowledged."), "headers": _RETRY_HEADER},
}

PUBLIC_RESPONSES = {
    "429": {**_err("Too many requests from this client address (`rate_limited`); retry after the given seconds."),
            "headers": _RETRY_HEADER},
    "503": {**_err("The view could not be written to the audit log (`audit_unavailable`); nothing was shown."),
            "headers": _RETRY_HEADER},
}
"""Responses every keyless endpoint (unsubscribe links, the preference center) may give."""

TOKEN_PARAMETER = {"name": "token", "in": "path", "required": True,
                   "description": "An opaque link token (no personal data in it); see docs/api.md.",
                   "schema": {"type": "string", "minLength": 3, "maxLength": 1024, "pattern": "^[A-Za-z0-9_.-]+$"}}

READ_RESPONSES = {
    "400": _err("A query parameter is invalid."),
    "401": _err("Missing, unknown or revoked key."),
    "403": _err("The key may not read."),
}

_BODY_TYPES = ("application/json", "text/plain")


def _collect_op(kind: str, schema_ref: str) -> dict[str, Any]:
    return {
        "post": {
            "summary": f"Record {article(kind)} call" if kind != "batch" else "Record a batch of calls",
            "operationId": f"collect_{kind}",
            "security": [{"writeKeyBasic": []}, {}],
            "requestBody": {
                "required": True,
                "content": {t: {"schema": {"$ref": schema_ref}} for t in _BODY_TYPES},
            },
            "responses": COLLECT_RESPONSES,
        }
    }


def document(extra_paths: dict[str, Any] | None = None) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for kind in CALLS:
        paths[f"/v1/{kind}"] = _collect_op(kind, f"#/components/schemas/{kind.title()}")
        paths[f"/v1/{kind[0]}"] = _collect_op(kind, f"#/components/schemas/{kind.title()}")
    for path in ("/v1/batch", "/v1/b", "/b", "/v1/import"):
        op = _collect_op("batch", "#/components/schemas/Batch")
        op["post"]["operationId"] = "collect_batch" + path.replace("/", "_")
        paths[path] = op
    for kind in CALLS:
        for p in (f"/v1/{kind}", f"/v1/{kind[0]}"):
            paths[p]["post"]["operationId"] = "collect" + p.replace("/", "_")
    paths["/health"] = {"get": {
        "summary": "Liveness and storage check", "operationId": "health",
        "responses": {
            "200": {"description": "Healthy", "content": {"application/json": {"schema": {
                "type": "object", "properties": {"status": {"type": "string"}, "backend": {"type": "string"},
                                                 "version": {"type": "string"}, "log_head": {"type": "integer"},
                                                 "profiles_position": {"type": "integer"}},
                "required": ["status"]}}}},
            "503": _err("Storage unavailable."),
        }}}
    paths["/v1/events"] = {"get": {
        "summary": "Read the log by position (read or admin key)", "operationId": "list_events",
        "security": [{"bearer": []}],
        "parameters": [
            {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 2**62}},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 10000}},
        ],
        "responses": {
            "200": {"description": "Events after the position", "content": {"application/json": {"schema": {
                "type": "object", "properties": {"events": {"type": "array", "items": _OBJ},
                                                 "next_after": {"type": "integer"}},
                "required": ["events", "next_after"]}}}},
            **READ_RESPONSES,
        }}}
    paths["/v1/events/count"] = {"get": {
        "summary": "How many events the log holds", "operationId": "count_events",
        "security": [{"bearer": []}],
        "responses": {
            "200": {"description": "Count and head position", "content": {"application/json": {"schema": {
                "type": "object", "properties": {"count": {"type": "integer"}, "head": {"type": "integer"}},
                "required": ["count", "head"]}}}},
            **READ_RESPONSES,
        }}}
    if extra_paths:
        paths.update(extra_paths)
    batch_item = {"oneOf": [
        {**schema, "properties": {**schema["properties"], "type": {"type": "string", "enum": [k, k[0]]}},
         "required": [*schema["required"], "type"]}
        for k, schema in CALLS.items()
    ]}
    return {
        "openapi": "3.0.3",
        "info": {"title": "takt", "version": __version__,
                 "description": "Customer data and engagement platform. The collection endpoints are "
                                "compatible with Segment's HTTP Tracking API."},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "writeKeyBasic": {"type": "http", "scheme": "basic",
                                  "description": "The write key as username, empty password."},
                "bearer": {"type": "http", "scheme": "bearer", "description": "A read or admin key."},
            },
            "schemas": {
                **{k.title(): v for k, v in CALLS.items()},
                "Batch": {
                    "type": "object",
                    "properties": {
                        "batch": {"type": "array", "items": batch_item, "minItems": 1, "maxItems": 2500},
                        "context": _OBJ, "integrations": _OBJ, "writeKey": {"type": "string"},
                    },
                    "required": ["batch"],
                },
                "Error": ERROR,
            },
        },
    }
