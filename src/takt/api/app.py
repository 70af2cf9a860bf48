"""The ASGI application: routes from each API module, one error shape, CORS, and the writer's lifetime."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from takt import __version__
from takt import services as services_mod
from takt.api import (
    analytics,
    campaign_runs,
    campaigns,
    collect,
    confirmations,
    deliveries,
    events,
    keys,
    models,
    offers,
    outbox,
    policy,
    preferences,
    privacy,
    profiles,
    segments,
    suppression,
    unsubscribe,
)
from takt.api.auth import Authenticator
from takt.api.context import ApiContext, ctx
from takt.api.openapi import document
from takt.api.responses import JSON, http_error_handler, internal_error_handler, takt_error_handler
from takt.clock import Clock, system_clock
from takt.errors import TaktError
from takt.ingest.segment import Limits
from takt.ingest.window import TimeWindow
from takt.log.writer import GroupCommitWriter
from takt.models import scoring  # registers score() for segments and the profile's "scores"
from takt.models.clv import segment as clv_segment  # registers clv() for segments
from takt.policy import segment_functions  # registers contactable() for segments
from takt.profiles.config import ProfileConfig
from takt.projections.runner import ProfileRunner
from takt.segments.live import attach_live
from takt.settings import Settings
from takt.storage.base import Storage
from takt.workspace import verification_secret

logger = logging.getLogger(__name__)

# Other packages add their routes (and OpenAPI paths) here without touching this module.
RouteProvider = Callable[[], Sequence[BaseRoute]]
ROUTE_PROVIDERS: list[RouteProvider] = [collect.routes, events.routes, profiles.routes, policy.routes,
                                         unsubscribe.routes, preferences.routes, suppression.routes,
                                         segments.routes, offers.routes]
OPENAPI_PATHS: list[Callable[[], dict[str, Any]]] = [profiles.openapi_paths, policy.openapi_paths,
                                                     unsubscribe.openapi_paths, preferences.openapi_paths,
                                                     suppression.openapi_paths, segments.openapi_paths,
                                                     offers.openapi_paths]
ROUTE_PROVIDERS.append(privacy.routes)
OPENAPI_PATHS.append(privacy.openapi_paths)
ROUTE_PROVIDERS.append(keys.routes)
OPENAPI_PATHS.append(keys.openapi_paths)
ROUTE_PROVIDERS.append(models.routes)
OPENAPI_PATHS.append(models.openapi_paths)
ROUTE_PROVIDERS.append(campaigns.routes)
OPENAPI_PATHS.append(campaigns.openapi_paths)
ROUTE_PROVIDERS.append(deliveries.routes)
OPENAPI_PATHS.append(deliveries.openapi_paths)
ROUTE_PROVIDERS.append(outbox.routes)
OPENAPI_PATHS.append(outbox.openapi_paths)
ROUTE_PROVIDERS.append(confirmations.routes)
OPENAPI_PATHS.append(confirmations.openapi_paths)
ROUTE_PROVIDERS.append(analytics.routes)
OPENAPI_PATHS.append(analytics.openapi_paths)
ROUTE_PROVIDERS.append(campaign_runs.routes)
OPENAPI_PATHS.append(campaign_runs.openapi_paths)


async def health(request: Request) -> Response:
    c = ctx(request)
    try:
        head = c.storage.log.head()
    except Exception as e:
        raise TaktError(f"storage unavailable: {type(e).__name__}", code="unavailable", status=503) from None
    body: dict[str, Any] = {"status": "ok", "backend": c.storage.backend, "version": __version__, "log_head": head}
    runner = c.extras.get("profiles")
    if runner is not None:
        body["profiles_position"] = runner.position
        # whether this process folds the log or reads what the worker publishes (takt.projections.runner)
        body["projection"] = {"folds": runner.reads is None, "folded": runner.folded}
    return JSON(body)


async def openapi(request: Request) -> Response:
    extra: dict[str, Any] = {}
    for fn in OPENAPI_PATHS:
        extra.update(fn())
    return JSON(document(extra))


def limits_from(settings: Settings) -> Limits:
    return Limits(
        max_event_bytes=settings["ingest.max_event_bytes"],
        max_request_bytes=settings["ingest.max_request_bytes"],
        max_batch_events=settings["ingest.max_batch_events"],
        max_depth=settings["ingest.max_nesting_depth"],
        window=TimeWindow.from_settings(settings),
    )


def create_app(storage: Storage, settings: Settings, clock: Clock = system_clock, project: bool = True) -> Starlette:
    """The API over one workspace's storage. With ``project`` (the default) the server also runs the
    profile projection live: it catches up from its last snapshot and follows every commit."""
    context = ApiContext(
        storage=storage,
        settings=settings,
        clock=clock,
        auth=Authenticator(storage.keys),
        limits=limits_from(settings),
        verification_secret=verification_secret(storage.anchor) if storage.anchor else None,
        views=dataclasses.replace(TimeWindow.from_settings(settings),
                                  future=timedelta(days=settings["api.max_at_future_days"])),
    )
    services = services_mod.services_of(storage)  # built when the workspace's storage was opened
    runner: ProfileRunner | None = None
    if project and settings["profiles.live"] and getattr(storage, "snapshots", None) is not None:
        runner = ProfileRunner(storage, ProfileConfig.from_settings(settings), clock,
                               cache_size=settings["profiles.cache_size"])
        context.extras["profiles"] = runner
        segments.attach(storage, runner)  # the profile JSON's "segments" section reads through it
        attach_live(storage, runner, settings)  # live segment membership and computed traits
        segment_functions.attach_runner(storage, runner, settings)  # contactable() live and in SQL
        scoring.attach(storage)  # live score("…") reads this workspace's model_scores
        clv_segment.attach(storage)  # live clv("…") reads this workspace's clv_scores

    orchestrators: list[Any] = []  # the campaign orchestrator this server started (stopped at shutdown)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        context.writer = GroupCommitWriter(
            storage.log,
            max_queue_events=settings["ingest.queue_max_events"],
            max_group_events=settings["ingest.group_commit_max_events"],
            retry_after=settings["ingest.retry_after_seconds"],
        )
        services.writer = context.writer
        logger.info("serving a %s workspace; the log holds events up to position %d", storage.backend,
                    storage.log.head())
        if runner is not None:
            # Catch-up happens in the follower thread, so a large backlog never delays serving. On PostgreSQL
            # the server may read what `takt worker` publishes instead (server.fold).
            runner.open(settings["server.fold"])
            # reads of a person wait for the projection to reach the backlog and this server's writes about them
            policy.watch_writes(context, runner, storage.log.head())
            context.writer.on_commit.append(runner.notify)
            writer = context.writer
            runner.start(busy=lambda: writer.pending > 0)
            runner.notify()
            if settings["campaigns.run"]:
                # campaigns run beside the projection (one process at a time: the "campaigns" lease)
                from takt.campaigns.running import attach_workspace

                orchestrators.append(attach_workspace(storage, runner, settings, confirmations.deliveries(context),
                                                      clock))
                context.extras[campaign_runs.ORCHESTRATOR] = orchestrators[-1]
        try:
            yield
        finally:
            context.writer.close()
            services.writer = None
            for orchestrator in orchestrators:
                orchestrator.stop()  # before the runner and the storage it reads
            context.extras.pop(campaign_runs.ORCHESTRATOR, None)
            if runner is not None:
                runner.stop()
                logger.info("stopped; profiles reflect the log up to position %d", runner.position)
            confirmations.close_deliveries(context)  # SMTP connections the server opened

    routes: list[BaseRoute] = [
        Route("/health", health, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
    for provider in ROUTE_PROVIDERS:
        routes.extend(provider())
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings["server.cors_origins"]),
                allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
                # X-Retry-Count: analytics.js and analytics-python send it on every retry
                allow_headers=["Authorization", "Content-Type", "Content-Encoding", "X-Retry-Count"],
                max_age=86400,
            )
        ],
        exception_handlers={
            TaktError: takt_error_handler,
            HTTPException: http_error_handler,
            Exception: internal_error_handler,
        },
        lifespan=lifespan,
    )
    app.state.ctx = context
    return app
