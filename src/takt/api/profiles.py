"""Reading profiles (read or admin key): one person's profile, lookup by any identifier, and the timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from takt.api.auth import bearer
from takt.api.context import ApiContext, ctx, query_at
from takt.api.events import READ_KINDS, _int_param
from takt.api.openapi import error_doc as _err
from takt.api.policy import _entry, _settled
from takt.api.responses import JSON
from takt.errors import TaktError, invalid
from takt.privacy.audit import arecord as audit_async
from takt.privacy.audit import record as audit
from takt.profiles.sections import add_sections
from takt.profiles.view import profile_json
from takt.projections.published import Entry
from takt.projections.runner import ProfileRunner

MIN_QUERY = 2
"""Shortest search query: one letter would page through everyone."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _runner(c: ApiContext) -> ProfileRunner:
    runner = c.extras.get("profiles")
    if runner is None:
        raise TaktError("profiles are not projected by this server", code="unavailable", status=503)
    return runner  # type: ignore[no-any-return]


def _profile_body(c: ApiContext, runner: ProfileRunner, entry: Entry, at_raw: str | None) -> dict[str, object]:
    at = None
    if at_raw:
        at = query_at(at_raw, c)
    now = at or c.clock()
    body = profile_json(entry.state, None, now, runner.config)
    body.update(entry.cluster)  # the identity part, copied when the state was published
    body = add_sections(c.storage, body, now)
    body["links"] = {"self": f"/v1/profiles/{body['id']}", "timeline": f"/v1/profiles/{body['id']}/timeline"}
    return body


async def _read_profile(c: ApiContext, runner: ProfileRunner, key_id: str, action: str, entry: Entry,
                        at_raw: str | None) -> dict[str, object]:
    """The profile JSON (its storage queries in a worker thread), returned only once its read is in the audit
    log (the audit log's group commit; no worker thread waits for it)."""
    body = await run_in_threadpool(_profile_body, c, runner, entry, at_raw)
    await audit_async(c.storage, c.clock(), key_id, action, str(body["id"]))
    return body


async def _published(c: ApiContext, ref: str) -> tuple[ProfileRunner, Entry]:
    """The runner and the published profile ``ref`` names, once the projection reached this server's writes
    about the person (read your writes; no fold, no lock: takt.projections.published)."""
    runner = await _settled(c)
    return runner, await _entry(c, runner, ref)


def _check_at(request: Request, c: ApiContext) -> None:
    raw = request.query_params.get("at")
    if raw:
        query_at(raw, c)


async def get_profile(request: Request) -> Response:
    c = ctx(request)
    key = c.auth.require(bearer(request), READ_KINDS)
    _check_at(request, c)  # a bad request is a 400 whether the profile exists or not
    runner, entry = await _published(c, request.path_params["profile_id"])
    body = await _read_profile(c, runner, key.id, "profile.read", entry, request.query_params.get("at"))
    return JSON(body)


async def find_profile(request: Request) -> Response:
    c = ctx(request)
    key = c.auth.require(bearer(request), READ_KINDS)
    identifier = request.query_params.get("identifier")
    if not identifier:
        raise invalid("give ?identifier=TYPE:VALUE, e.g. email:ann@example.com")
    _check_at(request, c)
    runner, entry = await _published(c, identifier)
    body = await _read_profile(c, runner, key.id, "profile.lookup", entry, request.query_params.get("at"))
    return JSON(body)


def _cursor(raw: str) -> tuple[datetime, int]:
    """A timeline cursor ``<microseconds since the epoch>_<position>`` (as ``next`` gives it)."""
    try:
        micros, _, pos = raw.partition("_")
        return EPOCH + timedelta(microseconds=int(micros)), int(pos)
    except (ValueError, OverflowError):
        raise invalid(f"query parameter 'before' must be a cursor from a page's 'next', got {raw[:60]!r}") from None


def _cursor_text(cursor: tuple[datetime, int]) -> str:
    return f"{(cursor[0] - EPOCH) // timedelta(microseconds=1)}_{cursor[1]}"


def _read_timeline(c: ApiContext, runner: ProfileRunner, key_id: str, pid: str, before: tuple[datetime, int] | None,
                   limit: int) -> dict[str, object]:
    events, nxt = runner.timeline(pid, before, limit)
    audit(c.storage, c.clock(), key_id, "profile.timeline", pid)
    return {
        "profile_id": pid,
        "order": "event time, newest first",
        "events": [{"position": e.position, **e.event.to_record()} for e in events],
        "next": f"/v1/profiles/{pid}/timeline?before={_cursor_text(nxt)}&limit={limit}" if nxt else None,
        "next_before": _cursor_text(nxt) if nxt else None,
    }


async def timeline(request: Request) -> Response:
    c = ctx(request)
    key = c.auth.require(bearer(request), READ_KINDS)
    runner = _runner(c)
    limit = _int_param(request, "limit", 50, 1, 1000)
    before_raw = request.query_params.get("before")
    before = _cursor(before_raw) if before_raw else None
    body = await run_in_threadpool(_read_timeline, c, runner, key.id, request.path_params["profile_id"], before,
                                   limit)
    return JSON(body)


def _search(c: ApiContext, runner: ProfileRunner, key_id: str, query: str, after: str | None,
            limit: int) -> dict[str, object]:
    found, nxt = runner.search(query, after, limit)
    now = c.clock()
    for p in found:  # every profile a search shows is a read of personal data: audited before it is returned
        audit(c.storage, now, key_id, "profile.search", str(p["id"]))
    return {"query": query, "profiles": found, "next_after": nxt,
            "next": f"/v1/profiles/search?{urlencode({'q': query, 'after': nxt, 'limit': limit})}" if nxt else None}


async def search_profiles(request: Request) -> Response:
    c = ctx(request)
    key = c.auth.require(bearer(request), READ_KINDS)
    query = (request.query_params.get("q") or "").strip()
    if len(query) < MIN_QUERY:
        raise invalid(f"give ?q= with at least {MIN_QUERY} characters: part of a name, an email, a phone number, "
                      "any identifier or a profile id")
    limit = _int_param(request, "limit", 20, 1, 200)
    after = request.query_params.get("after") or None
    runner = _runner(c)
    return JSON(await run_in_threadpool(_search, c, runner, key.id, query, after, limit))


def routes() -> list[Route]:
    return [
        Route("/v1/profiles", find_profile, methods=["GET"]),
        Route("/v1/profiles/search", search_profiles, methods=["GET"]),
        Route("/v1/profiles/{profile_id}", get_profile, methods=["GET"]),
        Route("/v1/profiles/{profile_id}/timeline", timeline, methods=["GET"]),
    ]





def openapi_paths() -> dict[str, Any]:
    profile: dict[str, Any] = {"type": "object", "additionalProperties": True,
               "properties": {"id": {"type": "string"}, "identifiers": {"type": "array"},
                              "traits": {"type": "object"}, "contact_points": {"type": "array"},
                              "interests": {"type": "array"}}, "required": ["id"]}
    common: dict[str, Any] = {"401": _err("Missing, unknown or revoked key."), "403": _err("The key may not read profiles."),
              "404": _err("No such profile."), "400": _err("A parameter is invalid."),
              "503": _err("Profiles are not projected by this server (`unavailable`), or the read could not be "
                          "written to the audit log (`audit_unavailable`: nothing is returned; retry), or the "
                          "projection did not publish this server's writes about the person in time "
                          "(`projection_behind`: retry).")}
    ok: dict[str, Any] = {"description": "The profile", "content": {"application/json": {"schema": profile}}}
    at = {"name": "at", "in": "query", "schema": {"type": "string", "format": "date-time"},
          "description": "Decay interests to this time (default: now)."}
    pid = {"name": "profile_id", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "/v1/profiles": {"get": {
            "summary": "Find a profile by any identifier", "operationId": "find_profile",
            "security": [{"bearer": []}],
            "parameters": [{"name": "identifier", "in": "query", "required": True, "schema": {"type": "string"}},
                           at],
            "responses": {"200": ok, **common}}},
        "/v1/profiles/search": {"get": {
            "summary": "Find profiles by name or part of an identifier (case-insensitive; audited per profile shown)",
            "operationId": "search_profiles", "security": [{"bearer": []}],
            "parameters": [{"name": "q", "in": "query", "required": True, "schema": {"type": "string",
                                                                                    "minLength": MIN_QUERY}},
                           {"name": "after", "in": "query", "schema": {"type": "string"}},
                           {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                                          "maximum": 200}}],
            "responses": {"200": {"description": "A page of matching profiles, in profile id order", "content": {
                "application/json": {"schema": {"type": "object", "properties": {
                    "profiles": {"type": "array"}, "next_after": {"type": "string", "nullable": True},
                    "next": {"type": "string", "nullable": True}}, "required": ["profiles"]}}}}, **common}}},
        "/v1/profiles/{profile_id}": {"get": {
            "summary": "A profile", "operationId": "get_profile", "security": [{"bearer": []}],
            "parameters": [pid, at], "responses": {"200": ok, **common}}},
        "/v1/profiles/{profile_id}/timeline": {"get": {
            "summary": "A profile's events across all touchpoints, in event time order, newest first", "operationId": "profile_timeline",
            "security": [{"bearer": []}],
            "parameters": [pid,
                           {"name": "before", "in": "query", "schema": {"type": "string"},
                            "description": "The cursor from the previous page's next."},
                           {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                                          "maximum": 1000}}],
            "responses": {"200": {"description": "A page of events", "content": {"application/json": {
                "schema": {"type": "object", "properties": {"events": {"type": "array"},
                                                             "next": {"type": "string", "nullable": True}},
                           "required": ["events"]}}}}, **common}}},
    }
