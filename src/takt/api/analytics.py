"""Touchpoint analytics over HTTP (read keys): ``GET /v1/analytics/touchpoints``, ``/paths``, ``/attribution``,
and whether the data is fresh, ``/fresh``.

Parameters (query string): ``segment`` (a stored segment's name) or ``definition``, ``from``/``to`` (ISO 8601;
default the last 90 days), ``goal``, ``days``, ``length``, ``top``, ``trend`` (day or week), ``half_life``
(days, comma-separated). The JSON is the report of :mod:`takt.analytics` (``docs/analytics.md``): groups smaller
than ``analytics.min_group_size`` people are left out and counted under ``suppressed``.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from takt.analytics.config import AnalyticsConfig
from takt.analytics.engine import SessionEngine
from takt.analytics.freshness import freshness
from takt.analytics.request import KINDS, PARAMETERS, ask_from, run, scope_of
from takt.api.auth import bearer
from takt.api.context import ctx
from takt.api.openapi import error_doc as _err
from takt.api.openapi import ok_doc as _ok
from takt.api.query_budget import query_slot
from takt.api.responses import JSON
from takt.errors import TaktError, invalid

READ_KINDS = ("read", "admin")


def _runner(c: Any) -> Any:
    runner = c.extras.get("profiles")
    if runner is None:
        raise TaktError("profiles are not projected by this server", code="unavailable", status=503)
    return runner


def _tables(c: Any, runner: Any) -> Any:
    from takt.projections.tables import WorkspaceTables

    tables = c.extras.get("segment_tables")
    if tables is None:
        tables = c.extras.setdefault("segment_tables", WorkspaceTables(c.storage, runner))
    return tables


def _handler(kind: str) -> Any:
    async def handle(request: Request) -> Response:
        c = ctx(request)
        key = c.auth.require(bearer(request), READ_KINDS)
        ask = ask_from(kind, dict(request.query_params), c.clock())
        runner = _runner(c)
        tables = _tables(c, runner)
        async with query_slot(c, key.id):
            await run_in_threadpool(runner.catch_up)
            await run_in_threadpool(tables.refresh, ask.end)
            scope = await run_in_threadpool(scope_of, ask, c.storage)
            report = await run_in_threadpool(run, ask, SessionEngine(c.storage), scope,
                                             AnalyticsConfig.from_settings(c.settings))
        report["position"] = tables.position
        return JSON(report)

    return handle


async def fresh(request: Request) -> Response:
    """Per source: time since its last event, ingestion lag, volume against the usual, status against its SLA."""
    c = ctx(request)
    key = c.auth.require(bearer(request), READ_KINDS)
    unknown = sorted(set(request.query_params))
    if unknown:
        raise invalid(f"unknown parameter{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}",
                      code="unknown_field", errors=[{"field": k, "reason": "unknown parameter"} for k in unknown])
    runner = _runner(c)
    tables = _tables(c, runner)
    now = c.clock()
    async with query_slot(c, key.id):
        await run_in_threadpool(runner.catch_up)
        await run_in_threadpool(tables.refresh, now)
        config = AnalyticsConfig.from_settings(c.settings)
        report = await run_in_threadpool(freshness, SessionEngine(c.storage), now, config.source_sla_minutes)
    report["position"] = tables.position
    return JSON(report)


def routes() -> list[Route]:
    return [*(Route(f"/v1/analytics/{kind}", _handler(kind), methods=["GET"]) for kind in KINDS),
            Route("/v1/analytics/fresh", fresh, methods=["GET"])]


_HELP = {
    "segment": "A stored segment's name (default: everyone).",
    "definition": "A segment definition, not stored (instead of segment).",
    "from": "Start of the period, ISO 8601 (default: 90 days before to).",
    "to": "End of the period, exclusive, ISO 8601 (default: now).",
    "goal": "The track event that is a conversion (default: setting analytics.goal).",
    "days": "Days before a conversion whose touches lead to it (default: analytics.lookback_days).",
    "length": "Paths: the last this many steps (1–10, default 5).",
    "top": "Paths: how many (default 20).",
    "trend": "Touchpoints: trend by day or week.",
    "half_life": "Attribution: time-decay half-lives in days, comma-separated (default 7).",
}
_SUMMARY = {
    "touchpoints": "Interactions and people by touchpoint, purpose, hour of the week and day or week; "
                   "converters' touchpoint mix",
    "paths": "The most frequent touchpoint sequences before a goal event",
    "attribution": "Goal events attributed to touchpoints: first, last, linear, time-decay, Markov",
}


def openapi_paths() -> dict[str, Any]:
    params = [{"name": n, "in": "query", "required": False, "schema": {"type": "string"},
               "description": _HELP[n]} for n in PARAMETERS]
    report = {"type": "object", "required": ["scope", "engine", "min_group_size", "suppressed", "notes"],
              "additionalProperties": True, "properties": {
                  "scope": {"type": "object"}, "engine": {"type": "string"}, "min_group_size": {"type": "integer"},
                  "notes": {"type": "array", "items": {"type": "string"}}}}
    auth: dict[str, Any] = {"401": _err("Missing, unknown or revoked key."),
                            "403": _err("The key's kind may not use this endpoint.")}
    paths_doc: dict[str, Any] = {"/v1/analytics/fresh": {"get": {
        "summary": "Is the data fresh? Per source: time since the last event, ingestion lag, volume, SLA status",
        "operationId": "analytics_fresh", "tags": ["analytics"], "security": [{"bearer": []}],
        "responses": {"200": _ok("Per source, with ok / warning / breach against analytics.source_sla_minutes", {
            "type": "object", "required": ["at", "status", "sources"], "additionalProperties": True,
            "properties": {"at": {"type": "string"}, "status": {"type": "string"},
                           "sources": {"type": "array", "items": {"type": "object"}}}}),
                      "400": _err("An unknown parameter."), **auth,
                      "503": _err("Profiles are not projected by this server.")}}}}
    for kind in KINDS:
        responses: dict[str, Any] = {
            "200": _ok("The report (groups below analytics.min_group_size left out)", report),
            "400": _err("A parameter is not valid."), **auth, "404": _err("No stored segment of that name."),
            "503": _err("Profiles are not projected by this server.")}
        paths_doc[f"/v1/analytics/{kind}"] = {"get": {
            "summary": _SUMMARY[kind], "operationId": f"analytics_{kind}", "tags": ["analytics"],
            "security": [{"bearer": []}], "parameters": params, "responses": responses}}
    return paths_doc
