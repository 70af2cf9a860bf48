"""The model registry over HTTP (read or admin key): what ``takt models list`` shows while the server holds the
workspace. Training and scoring stay command-line jobs (they run for minutes and own the database meanwhile)."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from takt.api.auth import bearer
from takt.api.context import ctx
from takt.api.events import READ_KINDS
from takt.api.openapi import error_doc as _err
from takt.api.openapi import ok_doc as _ok
from takt.api.responses import JSON
from takt.storage.base import Storage


def model_listing(storage: Storage, all_versions: bool = False) -> list[dict[str, Any]]:
    """The latest version of every model (or every version), with whether it is active and how many profiles
    its active version scored (the same rows as ``takt models list --json``)."""
    from takt.models.registry import Registry

    registry = Registry(storage)
    records = registry.records() if all_versions else registry.latest()
    active = {r.model: r.version for r in registry.active()}
    counts = registry.score_counts()
    return [{**r.summary(), "active": active.get(r.model) == r.version,
             "scored_profiles": counts.get(r.model, 0) if active.get(r.model) == r.version else 0}
            for r in records]


async def list_models(request: Request) -> Response:
    c = ctx(request)
    c.auth.require(bearer(request), READ_KINDS)
    all_versions = request.query_params.get("all_versions", "false").lower() in ("1", "true", "yes")
    return JSON({"models": await run_in_threadpool(model_listing, c.storage, all_versions)})


def routes() -> list[Route]:
    return [Route("/v1/models", list_models, methods=["GET"])]


def openapi_paths() -> dict[str, Any]:
    return {"/v1/models": {"get": {
        "summary": "The model registry: the latest version of every model with its metrics and baseline",
        "operationId": "list_models", "security": [{"bearer": []}],
        "parameters": [{"name": "all_versions", "in": "query", "schema": {"type": "boolean"},
                        "description": "Every version, not only the latest of each model."}],
        "responses": {"200": _ok("The models", {"type": "object", "required": ["models"],
                                                "properties": {"models": {"type": "array"}}}),
                      "401": _err("Missing, unknown or revoked key."),
                      "403": _err("The key may not read the registry.")}}}}
