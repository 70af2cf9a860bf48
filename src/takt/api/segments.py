"""Stored segments over HTTP: create, update, delete, list, versions, count, members, explain; memberships.

* ``POST /v1/segments`` (admin): ``{"name", "definition"}`` (text) or ``{"name", "json"}`` (JSON form) → 201.
* ``GET /v1/segments`` (read): every current segment. ``GET /v1/segments/{name}``: one;
  ``GET /v1/segments/{name}/versions``: its history.
* ``PUT /v1/segments/{name}`` (admin): a new version; ``DELETE /v1/segments/{name}`` (admin): a deletion version
  (409 while another segment refers to it).
* ``GET /v1/segments/{name}/count``, ``/members?limit=&after=&format=json|csv|parquet``: the compiled SQL run
  over the workspace's profile tables (DuckDB, or PostgreSQL for a PostgreSQL workspace), brought up to the
  log's head first; ``/explain``: plain English and the SQL for DuckDB, PostgreSQL and Spark.
* ``GET /v1/profiles/{profile_id}/segments`` (read): the segments a profile is in now (live evaluation) and
  its membership history (``segment_entered``/``segment_exited`` events in the log).

The profile JSON gains ``segments`` (the stored segments the profile is in now). Rules live in
:mod:`takt.segments.store`; this module only translates.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import pyarrow as pa
import pyarrow.parquet as pq
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from takt.api.auth import bearer
from takt.api.collect import read_capped
from takt.api.context import ApiContext, ctx, query_at
from takt.api.events import _int_param
from takt.api.openapi import error_doc as _err
from takt.api.openapi import ok_doc as _ok
from takt.api.query_budget import query_slot, run_budgeted
from takt.api.responses import JSON
from takt.campaigns.audience import AudienceRequest, audience_request, export, flat, workspace_context
from takt.errors import TaktError, invalid, not_found
from takt.ingest.segment import decode_body
from takt.privacy.audit import record as audit
from takt.profiles.sections import register_section
from takt.projections.runner import ProfileRunner
from takt.projections.tables import (
    WorkspaceTables,
    count_query,
    live_view,
    page_query,
    profile_view,
    workspace_vocabulary,
)
from takt.segments import ast as a
from takt.segments import compile_segment, evaluate, explain, to_sql
from takt.segments.cost import estimate as estimate_cost
from takt.segments.resolve import resolve
from takt.segments.store import SegmentVersion, check_name, membership_history, segment_store
from takt.segments.view import ProfileView
from takt.segments.vocabulary import Vocabulary
from takt.services import attached_services, services_of
from takt.storage.base import Storage

READ_KINDS = ("read", "admin")
ADMIN_KINDS = ("admin",)
CREATE_BODY = ("name", "definition", "json", "allow_unknown_names")
UPDATE_BODY = ("definition", "json", "allow_unknown_names")
DIALECTS = ("duckdb", "postgres", "spark")
MAX_PAGE = 100_000
PARQUET = "application/vnd.apache.parquet"

def attach(storage: Storage, runner: ProfileRunner) -> None:
    """Called by the app: this storage's profiles are projected by ``runner`` (``services_of(storage).runner``:
    the profile section, called with the storage only, reads through it)."""
    services_of(storage).runner = runner


# ---- helpers
def _runner(c: ApiContext) -> ProfileRunner:
    runner = c.extras.get("profiles")
    if runner is None:
        raise TaktError("profiles are not projected by this server", code="unavailable", status=503)
    return runner  # type: ignore[no-any-return]


def _tables(c: ApiContext, runner: ProfileRunner) -> WorkspaceTables:
    tables = c.extras.get("segment_tables")
    if tables is None:
        tables = c.extras.setdefault("segment_tables", WorkspaceTables(c.storage, runner))
    return tables  # type: ignore[no-any-return]


async def _body(request: Request, c: ApiContext, allowed: Sequence[str]) -> dict[str, Any]:
    raw = await read_capped(request, c.limits.max_request_bytes)
    body = decode_body(raw, request.headers.get("content-encoding"), c.limits)
    if not isinstance(body, dict):
        raise invalid("the body must be a JSON object", code="invalid_request")
    unknown = sorted(str(k) for k in set(body) - set(allowed))
    if unknown:
        raise invalid(f"unknown field{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}", code="unknown_field",
                      errors=[{"field": k, "reason": f"unknown field {k!r} (expected {', '.join(allowed)})"}
                              for k in unknown])
    flag = body.get("allow_unknown_names", False)
    if not isinstance(flag, bool):
        raise invalid("allow_unknown_names must be true or false", code="invalid_request",
                      errors=[{"field": "allow_unknown_names", "reason": "a boolean is required"}])
    return body


def _now(request: Request, c: ApiContext) -> datetime:
    raw = request.query_params.get("at")
    if not raw:
        return c.clock()
    return query_at(raw, c)


def _name(request: Request) -> str:
    return check_name(request.path_params["name"])


def _vocabulary(c: ApiContext, body: dict[str, Any]) -> Any:
    """The names to check a definition against; without them (``allow_unknown_names``, no profiles yet) still
    the identifying fields, whose values are not queryable."""
    runner = c.extras.get("profiles")
    if runner is None:
        return None
    found = None if body.get("allow_unknown_names") else workspace_vocabulary(c.storage, runner, c.settings)
    return found if found is not None else Vocabulary(identifying=runner.config.identifying)


def _segment_json(v: SegmentVersion) -> dict[str, Any]:
    name = v.name
    return {**v.to_json(), "links": {"self": f"/v1/segments/{name}", "versions": f"/v1/segments/{name}/versions",
                                     "count": f"/v1/segments/{name}/count", "members": f"/v1/segments/{name}/members",
                                     "explain": f"/v1/segments/{name}/explain"}}


# ---- endpoints: the store
async def create_segment(request: Request) -> Response:
    c = ctx(request)
    key = c.auth.require(bearer(request), ADMIN_KINDS)
    body = await _body(request, c, CREATE_BODY)
    name = check_name(body.get("name"))
    store = segment_store(c.storage)
    if c.extras.get("profiles") is not None:
        await run_in_threadpool(_runner(c).catch_up)

    def create() -> SegmentVersion:
        return store.create(name, text=body.get("definition"), json_form=body.get("json"), now=c.clock(), by=key.id,
                            vocabulary=_vocabulary(c, body))

    v = await run_in_threadpool(create)
    return JSON(_segment_json(v), status_code=201, headers={"Location": f"/v1/segments/{name}"})


async def list_segments(request: Request) -> Response:
    c = ctx(request)
    c.auth.require(bearer(request), READ_KINDS)
    rows = await run_in_threadpool(segment_store(c.storage).list)
    return JSON({"segments": [_segment_json(v) for v in rows]})


async def get_segment(request: Request) -> Response:
    c = ctx(request)
    c.auth.require(bearer(request), READ_KINDS)
    name = _name(request)
    return JSON(_segment_json(await run_in_threadpool(segment_store(c.storage).get, name)))


async def update_segment(request: Request) -> Response:
    c = ctx(request)
    key = c.auth.require(bearer(request), ADMIN_KINDS)
    name = _name(request)
    body = await _body(request, c, UPDATE_BODY)
    store = segment_store(c.storage)

    def update() -> SegmentVersion:
        return store.update(name, text=body.get("definition"), json_form=body.get("json"), now=c.clock(), by=key.id,
                            vocabulary=_vocabulary(c, body))

    return JSON(_segment_json(await run_in_threadpool(update)))


async def delete_segment(request: Request) -> Response:
    c = ctx(request)
    key = c.auth.require(bearer(request), ADMIN_KINDS)
    name = _name(request)
    store = segment_store(c.storage)
    v = await run_in_threadpool(lambda: store.delete(name, now=c.clock(), by=key.id))
    return JSON(v.to_json())


async def segment_versions(request: Request) -> Response:
    c = ctx(request)
    c.auth.require(bearer(request), READ_KINDS)
    name = _name(request)
    rows = await run_in_threadpool(segment_store(c.storage).versions, name)
    return JSON({"name": name, "versions": [v.to_json() for v in rows]})


# ---- endpoints: who is in
async def _prepared(request: Request, c: ApiContext) -> tuple[SegmentVersion, dict[str, Any], WorkspaceTables,
                                                               datetime]:
    name = _name(request)
    now = _now(request, c)
    runner = _runner(c)
    store = segment_store(c.storage)
    v = await run_in_threadpool(store.get, name)
    lookup = await run_in_threadpool(store.lookup)
    await run_in_threadpool(runner.catch_up)
    tables = _tables(c, runner)
    await run_in_threadpool(tables.refresh, now)
    return v, lookup, tables, now


def _reader(request: Request) -> tuple[ApiContext, str]:
    c = ctx(request)
    return c, c.auth.require(bearer(request), READ_KINDS).id


async def count_segment(request: Request) -> Response:
    c, key_id = _reader(request)
    async with query_slot(c, key_id):
        v, lookup, tables, now = await _prepared(request, c)
        query = count_query(compile_segment(v.tree, now=now, dialect_name=tables.dialect, segments=lookup))
        sql = tables.sql(query)
        rows = await run_budgeted(request, c, lambda q: q.run(sql))
    return JSON({"name": v.name, "version": v.version, "count": int(rows[0][0]) if rows else 0,
                 "at": now.isoformat().replace("+00:00", "Z"), "position": tables.position,
                 "engine": tables.dialect})


async def count_definition(request: Request) -> Response:
    """How many profiles match a definition given in the body, without storing it (``takt segment count 'DEF'``
    while the server holds the workspace)."""
    from takt.segments import parse

    c, key_id = _reader(request)
    body = await _body(request, c, ("definition", "allow_unknown_names"))
    definition = body.get("definition")
    if not isinstance(definition, str) or not definition.strip():
        raise invalid("give the segment as definition", code="invalid_request",
                      errors=[{"field": "definition", "reason": "a non-empty string is required"}])
    now = _now(request, c)
    runner = _runner(c)
    await run_in_threadpool(runner.catch_up)
    lookup = await run_in_threadpool(segment_store(c.storage).lookup)
    vocab = await run_in_threadpool(_vocabulary, c, body)
    if vocab is not None:
        vocab = dataclasses.replace(vocab, segments=frozenset(lookup))
    tree = parse(definition, vocabulary=vocab)
    async with query_slot(c, key_id):
        tables = _tables(c, runner)
        await run_in_threadpool(tables.refresh, now)
        query = count_query(compile_segment(tree, now=now, dialect_name=tables.dialect, segments=lookup))
        sql = tables.sql(query)
        rows = await run_budgeted(request, c, lambda q: q.run(sql))
    return JSON({"definition": definition, "explanation": explain(tree), "count": int(rows[0][0]) if rows else 0,
                 "at": now.isoformat().replace("+00:00", "Z"), "position": tables.position,
                 "engine": tables.dialect})


async def segment_members(request: Request) -> Response:
    fmt = request.query_params.get("format", "json")
    if fmt not in ("json", "csv", "parquet"):
        raise invalid(f"query parameter 'format' must be json, csv or parquet, got {fmt[:40]!r}")
    after = request.query_params.get("after") or None
    if fmt == "json":
        limit: int | None = _int_param(request, "limit", 1000, 1, MAX_PAGE)
    else:
        limit = _int_param(request, "limit", 0, 1, 2**62) if request.query_params.get("limit") else None
    wanted = _audience(request)
    c, key_id = _reader(request)
    async with query_slot(c, key_id):
        v, lookup, tables, now = await _prepared(request, c)
        # one more than asked: whether there is a next page
        query = page_query(compile_segment(v.tree, now=now, dialect_name=tables.dialect, segments=lookup), after,
                           limit + 1 if limit is not None else None)
        sql = tables.sql(query)
        ids = [str(r[0]) for r in await run_budgeted(request, c, lambda q: q.run(sql))]
    more = limit is not None and len(ids) > limit
    ids = ids[:limit] if limit is not None else ids
    key = c.auth.require(bearer(request), READ_KINDS)
    await run_in_threadpool(audit, c.storage, c.clock(), key.id, "segment.members", None)  # an export of people
    disposition = {"Content-Disposition": f'attachment; filename="{v.name}.{fmt}"'}
    rows: list[dict[str, Any]] | None = None
    if wanted is not None and wanted.personal:
        rows = await run_in_threadpool(_audience_rows, c, request, wanted, ids, now)
    if rows is not None and wanted is not None and fmt != "json":
        return _audience_file(rows, wanted.columns(), fmt, disposition)
    if fmt == "csv":
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["profile_id"])
        w.writerows([i] for i in ids)
        return Response(out.getvalue(), media_type="text/csv", headers=disposition)
    if fmt == "parquet":
        buf = io.BytesIO()
        pq.write_table(pa.table({"profile_id": pa.array(ids, pa.string())}), buf)
        return Response(buf.getvalue(), media_type=PARQUET, headers=disposition)
    nxt = None
    if more:
        nxt = f"/v1/segments/{v.name}/members?" + urlencode({"after": ids[-1], "limit": limit})
    if nxt is not None and wanted is not None and wanted.personal:
        nxt += "&" + urlencode({k: request.query_params[k] for k in AUDIENCE_PARAMS if k in request.query_params})
    body = {"name": v.name, "version": v.version, "at": now.isoformat().replace("+00:00", "Z"),
            "members": ids, "next_after": ids[-1] if more else None, "next": nxt}
    if rows is not None:
        body["rows"] = rows
    return JSON(body)


AUDIENCE_PARAMS = ("fields", "decide", "channels", "offer")


def _audience(request: Request) -> AudienceRequest | None:
    """The audience export a members request asks for (``fields``, ``decide``, ``channels``, ``offer``)."""
    q = request.query_params
    if not any(k in q for k in AUDIENCE_PARAMS):
        return None
    offer = q.get("offer", "false").lower()
    if offer not in ("true", "false", "1", "0", ""):
        raise invalid("query parameter 'offer' must be true or false")
    return audience_request(_csv_param(q.get("fields")), q.get("decide") or None, _csv_param(q.get("channels")),
                            offer in ("true", "1"))


def _csv_param(raw: str | None) -> list[str]:
    return [x.strip() for x in (raw or "").split(",") if x.strip()]


def _audience_rows(c: ApiContext, request: Request, wanted: AudienceRequest, ids: list[str], now: datetime
                   ) -> list[dict[str, Any]]:
    """The members' rows, audited under the caller's key (one ``segment.export`` entry per member)."""
    runner = _runner(c)
    key = c.auth.require(bearer(request), READ_KINDS)
    vocab = workspace_vocabulary(c.storage, runner)
    traits = frozenset(vocab.traits) if vocab is not None and vocab.traits is not None else None
    if traits is not None:
        from takt.segments.computed import SETTING, from_settings

        traits |= {t.name for t in from_settings(c.settings[SETTING.name])}
    checked = audience_request(wanted.fields, wanted.intent, wanted.channels, wanted.offer, known_traits=traits)
    return export(workspace_context(c.storage, runner, c.settings, checked), ids, checked, now, key.id)


def _audience_file(rows: list[dict[str, Any]], columns: list[str], fmt: str, disposition: dict[str, str]
                   ) -> Response:
    flats = [flat(r) for r in rows]
    if fmt == "csv":
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(columns)
        w.writerows([["" if f.get(col) is None else f.get(col) for col in columns] for f in flats])
        return Response(out.getvalue(), media_type="text/csv", headers=disposition)
    buf = io.BytesIO()
    pq.write_table(pa.table({col: pa.array([f.get(col) for f in flats]) if flats else pa.array([], pa.string())
                             for col in columns}), buf)
    return Response(buf.getvalue(), media_type=PARQUET, headers=disposition)


async def explain_segment(request: Request) -> Response:
    c, key_id = _reader(request)
    name = _name(request)
    now = _now(request, c)
    store = segment_store(c.storage)
    v = await run_in_threadpool(store.get, name)
    lookup = await run_in_threadpool(store.lookup)
    cost: dict[str, Any] = {"model": estimate_cost(v.tree, lookup).to_json(), "engine": None}
    if c.extras.get("profiles") is not None:  # the planner's estimate needs the profile tables
        async with query_slot(c, key_id):
            runner = _runner(c)
            await run_in_threadpool(runner.catch_up)
            tables = _tables(c, runner)
            await run_in_threadpool(tables.refresh, now)
            sql = tables.sql(count_query(compile_segment(v.tree, now=now, dialect_name=tables.dialect,
                                                         segments=lookup)))
            cost["engine"] = (await run_budgeted(request, c, lambda q: q.estimate(sql))).to_json()
    return JSON({"name": v.name, "version": v.version, "definition": v.definition, "explanation": explain(v.tree),
                 "at": now.isoformat().replace("+00:00", "Z"), "cost": cost,
                 "sql": {d: to_sql(v.tree, now=now, dialect_name=d, segments=lookup) for d in DIALECTS}})


@dataclass(frozen=True)
class _Definitions:
    """The current stored segments, as read at ``token`` (the number of rows of ``segment_versions``)."""

    token: int
    segments: tuple[tuple[str, int, a.Condition], ...]
    lookup: dict[str, a.Condition]
    needs_events: bool
    """Whether any definition (with the segments it refers to) aggregates events: if none does, a profile is
    evaluated without reading its events from the log."""


def _versions_token(storage: Storage) -> int:
    """``segment_versions`` only grows (an update or deletion is a new row), so its row count changes with every
    change of a definition, in this process or any other: one small query instead of reading and parsing every
    definition on every profile read."""
    with storage.session() as s:
        rows = s.execute("SELECT count(*) FROM segment_versions")
    return int(rows[0][0]) if rows else 0


def _aggregates(node: Any) -> bool:
    if isinstance(node, a.Aggregate):
        return True
    if isinstance(node, tuple | list):
        return any(_aggregates(x) for x in node)
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return any(_aggregates(getattr(node, f.name)) for f in dataclasses.fields(node))
    return False


def _definitions(storage: Storage) -> _Definitions:
    """The stored segments, parsed once per change of the store (the token is read before the list, so a change
    in between is read again next time, never missed)."""
    store = segment_store(storage)  # creates the table on first use; refuses a backend without one
    token = _versions_token(storage)
    services = services_of(storage)
    found: _Definitions | None = services.segment_definitions
    if found is not None and found.token == token:
        return found
    current = store.list()
    segments = tuple((s.name, s.version, s.tree) for s in current)
    lookup = {name: tree for name, _, tree in segments}
    needs = False
    for _, _, tree in segments:
        try:
            needs = needs or _aggregates(resolve(tree, lookup))
        except TaktError:  # a broken reference: evaluate it as before (it will not match), with events
            needs = True
    found = _Definitions(token, segments, lookup, needs)
    services.segment_definitions = found
    return found


def _view_without_events(runner: ProfileRunner, profile_id: str) -> ProfileView | None:
    with runner.lock:
        state = runner.projector.profile(profile_id)
        return None if state is None else profile_view(state, (), runner.config)


def current_memberships(storage: Storage, runner: ProfileRunner, profile_id: str, now: datetime
                        ) -> list[dict[str, Any]] | None:
    """The stored segments a profile is in at ``now`` (live evaluation); ``None`` for an unknown profile. The
    profile's events are read from the log only when a definition aggregates events."""
    defs = _definitions(storage)
    view = live_view(runner, profile_id) if defs.needs_events else _view_without_events(runner, profile_id)
    if view is None:
        return None
    out = []
    for name, version, tree in defs.segments:
        try:
            if evaluate(tree, view, now, segments=defs.lookup):
                out.append({"name": name, "version": version})
        except TaktError:  # e.g. a function its definition calls is no longer registered: not a member
            continue
    return out


async def profile_segments(request: Request) -> Response:
    c = ctx(request)
    key = c.auth.require(bearer(request), READ_KINDS)
    now = _now(request, c)
    runner = _runner(c)
    await run_in_threadpool(runner.catch_up)
    ref = request.path_params["profile_id"]
    with runner.lock:  # a profile id, or an identifier TYPE:VALUE
        state = runner.projector.profile_for(ref) if ":" in ref else runner.projector.profile(ref)
        pid = state.id if state is not None else None
    if pid is None:
        raise not_found(f"no profile has the identifier {ref!r}" if ":" in ref else f"no profile {ref!r}")
    current = await run_in_threadpool(current_memberships, c.storage, runner, pid, now)
    history = await run_in_threadpool(membership_history, c.storage, pid)
    await run_in_threadpool(audit, c.storage, c.clock(), key.id, "profile.segments", pid)
    return JSON({"profile_id": pid, "at": now.isoformat().replace("+00:00", "Z"), "segments": current or [],
                 "history": [h.to_json() for h in history]})


def _section(storage: Storage, profile: dict[str, Any], now: datetime) -> Any:
    services = attached_services(storage)
    runner = services.runner if services is not None else None
    if runner is None or not isinstance(profile.get("id"), str):
        return None
    return current_memberships(storage, runner, profile["id"], now)


register_section("segments", _section)


def routes() -> list[Route]:
    return [
        Route("/v1/segments", create_segment, methods=["POST"]),
        Route("/v1/segments", list_segments, methods=["GET"]),
        Route("/v1/segments/{name}", get_segment, methods=["GET"]),
        Route("/v1/segments/{name}", update_segment, methods=["PUT"]),
        Route("/v1/segments/{name}", delete_segment, methods=["DELETE"]),
        Route("/v1/segments/{name}/versions", segment_versions, methods=["GET"]),
        Route("/v1/segments/{name}/count", count_segment, methods=["GET"]),
        Route("/v1/segments/count", count_definition, methods=["POST"]),
        Route("/v1/segments/{name}/members", segment_members, methods=["GET"]),
        Route("/v1/segments/{name}/explain", explain_segment, methods=["GET"]),
        Route("/v1/profiles/{profile_id}/segments", profile_segments, methods=["GET"]),
    ]


# ---- OpenAPI




def openapi_paths() -> dict[str, Any]:
    name_schema = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
                   "description": "1-64 letters, digits, _ - ., starting with a letter or digit."}
    version: dict[str, Any] = {
        "type": "object", "additionalProperties": True,
        "required": ["name", "version", "definition", "json", "created_at", "deleted"],
        "properties": {"name": {"type": "string"}, "version": {"type": "integer"}, "definition": {"type": "string"},
                       "json": {"type": "object"}, "created_at": {"type": "string"},
                       "created_by": {"type": "string", "nullable": True}, "deleted": {"type": "boolean"}}}
    definition = {"type": "string", "minLength": 1, "maxLength": 20000,
                  "description": "The definition in the segment language (docs/segments.md)."}
    body_props = {"definition": definition, "json": {"type": "object", "description": "The JSON form instead."},
                  "allow_unknown_names": {"type": "boolean", "description": "Skip checking trait, event, interest "
                                          "and touchpoint names against those seen in the workspace."}}
    create_body = {"type": "object", "additionalProperties": False, "required": ["name"],
                   "properties": {"name": name_schema, **body_props}}
    update_body = {"type": "object", "additionalProperties": False, "properties": body_props}
    auth = {"401": _err("Missing, unknown or revoked key."), "403": _err("The key's kind may not use this endpoint.")}
    bad = {"400": _err("Invalid name, body or parameter; a definition error is positioned, with did-you-mean.")}
    missing = {"404": _err("No such segment (or it was deleted).")}
    conflict = {"409": _err("The segment exists, is used by another segment, or changed concurrently.")}
    unavailable = {"503": _err("Profiles are not projected by this server.")}
    budget = {"422": _err("The query went over its budget and was stopped: code query_timeout "
                          "(segments.query_timeout_seconds) or query_memory (segments.query_memory_share, "
                          "query_work_mem, query_spill_limit)."),
              "429": _err("Too many segment queries running (code too_many_queries: "
                          "segments.query_concurrency_per_key or segments.query_concurrency); see Retry-After.")}
    pname = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    at = {"name": "at", "in": "query", "schema": {"type": "string", "format": "date-time"},
          "description": "Evaluate windows as of this time (default: now)."}
    sec: list[dict[str, list[str]]] = [{"bearer": []}]
    jbody = {"required": True, "content": {"application/json": {"schema": create_body}}}
    ubody = {"required": True, "content": {"application/json": {"schema": update_body}}}
    members_json = {"type": "object", "required": ["name", "members"], "additionalProperties": True,
                    "properties": {"members": {"type": "array", "items": {"type": "string"}},
                                   "next_after": {"type": "string", "nullable": True},
                                   "next": {"type": "string", "nullable": True},
                                   "rows": {"type": "array", "items": {"type": "object"},
                                            "description": "With fields/decide/offer: one object per member."}}}
    return {
        "/v1/segments": {
            "post": {"summary": "Create a segment", "operationId": "create_segment", "security": sec,
                     "requestBody": jbody,
                     "responses": {"201": _ok("The segment's first version", version), **bad, **auth, **conflict}},
            "get": {"summary": "List segments", "operationId": "list_segments", "security": sec,
                    "responses": {"200": _ok("Every current segment", {
                        "type": "object", "required": ["segments"],
                        "properties": {"segments": {"type": "array", "items": version}}}), **auth}},
        },
        "/v1/segments/{name}": {
            "get": {"summary": "A segment's current version", "operationId": "get_segment", "security": sec,
                    "parameters": [pname],
                    "responses": {"200": _ok("The segment", version), **bad, **auth, **missing}},
            "put": {"summary": "Change a segment's definition (a new version)", "operationId": "update_segment",
                    "security": sec, "parameters": [pname], "requestBody": ubody,
                    "responses": {"200": _ok("The new (or unchanged) current version", version), **bad, **auth,
                                  **missing, **conflict}},
            "delete": {"summary": "Delete a segment (its history stays)", "operationId": "delete_segment",
                       "security": sec, "parameters": [pname],
                       "responses": {"200": _ok("The deletion version", version), **bad, **auth, **missing,
                                     **conflict}},
        },
        "/v1/segments/{name}/versions": {"get": {
            "summary": "A segment's version history", "operationId": "segment_versions", "security": sec,
            "parameters": [pname],
            "responses": {"200": _ok("Every version, oldest first", {
                "type": "object", "required": ["name", "versions"],
                "properties": {"versions": {"type": "array", "items": version}}}), **bad, **auth, **missing}}},
        "/v1/segments/{name}/count": {"get": {
            "summary": "How many profiles are in the segment", "operationId": "count_segment", "security": sec,
            "parameters": [pname, at],
            "responses": {"200": _ok("The count", {
                "type": "object", "required": ["name", "count"],
                "properties": {"count": {"type": "integer"}, "version": {"type": "integer"},
                               "position": {"type": "integer"}, "engine": {"type": "string"}}}),
                **bad, **auth, **missing, **budget, **unavailable}}},
        "/v1/segments/count": {"post": {
            "summary": "How many profiles match a definition (not stored)", "operationId": "count_definition",
            "security": sec, "parameters": [at],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "additionalProperties": False, "required": ["definition"],
                "properties": {"definition": definition,
                               "allow_unknown_names": body_props["allow_unknown_names"]}}}}},
            "responses": {"200": _ok("The count", {
                "type": "object", "required": ["definition", "count"],
                "properties": {"count": {"type": "integer"}, "explanation": {"type": "string"},
                               "position": {"type": "integer"}, "engine": {"type": "string"}}}),
                **bad, **auth, **budget, **unavailable}}},
        "/v1/segments/{name}/members": {"get": {
            "summary": "The segment's members, by profile id (paged; CSV or Parquet export)",
            "operationId": "segment_members", "security": sec,
            "parameters": [pname, at,
                           {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                                        "maximum": MAX_PAGE}},
                           {"name": "after", "in": "query", "schema": {"type": "string"},
                            "description": "Profile id to continue after (next_after of the previous page)."},
                           {"name": "format", "in": "query",
                            "schema": {"type": "string", "enum": ["json", "csv", "parquet"]},
                            "description": "csv and parquet export every member unless limit is given."},
                           {"name": "fields", "in": "query", "schema": {"type": "string"},
                            "description": "Comma-separated fields per member (traits, email, phone, first_seen, "
                                           "last_seen, top_interest): an audited audience export."},
                           {"name": "decide", "in": "query",
                            "schema": {"type": "string", "enum": ["marketing", "transactional", "service"]},
                            "description": "The contact policy's decision per member for this intent (needs "
                                           "channels)."},
                           {"name": "channels", "in": "query", "schema": {"type": "string"},
                            "description": "Comma-separated candidate channels for decide."},
                           {"name": "offer", "in": "query", "schema": {"type": "boolean"},
                            "description": "The next-best offer per member for decide's intent and channels."}],
            "responses": {"200": {"description": "A page of members (json) or the export (csv, parquet)",
                                  "content": {"application/json": {"schema": members_json},
                                              "text/csv": {"schema": {"type": "string"}},
                                              PARQUET: {"schema": {"type": "string", "format": "binary"}}}},
                          **bad, **auth, **missing, **budget, **unavailable}}},
        "/v1/segments/{name}/explain": {"get": {
            "summary": "The segment in plain English, its estimated cost, and its SQL for DuckDB, PostgreSQL and "
                       "Spark",
            "operationId": "explain_segment", "security": sec, "parameters": [pname, at],
            "responses": {"200": _ok("The explanation", {
                "type": "object", "required": ["name", "explanation", "cost", "sql"],
                "properties": {"explanation": {"type": "string"},
                               "cost": {"type": "object", "required": ["model", "engine"], "properties": {
                                   "model": {"type": "object", "description": "Counted on the definition "
                                             "(docs/segments.md, Budgets): event_scans, aggregates, windows, "
                                             "event_filters, joins, conditions, score."},
                                   "engine": {"type": "object", "nullable": True, "description": "The query "
                                              "planner's estimate (operators, estimated_rows, planner_cost); "
                                              "null when this server does not project profiles."}}},
                               "sql": {"type": "object", "required": list(DIALECTS),
                                       "properties": {d: {"type": "string"} for d in DIALECTS}}}}),
                **bad, **auth, **missing, **budget}}},
        "/v1/profiles/{profile_id}/segments": {"get": {
            "summary": "The segments a profile is in now, and its membership history",
            "operationId": "profile_segments", "security": sec,
            "parameters": [{"name": "profile_id", "in": "path", "required": True, "schema": {"type": "string"}},
                           at],
            "responses": {"200": _ok("Memberships", {
                "type": "object", "required": ["profile_id", "segments", "history"],
                "properties": {"segments": {"type": "array", "items": {"type": "object"}},
                               "history": {"type": "array", "items": {"type": "object"}}}}),
                "400": _err("A parameter is invalid."), **auth, "404": _err("No such profile."), **unavailable}}},
    }
