"""Segment queries at the HTTP edge: a slot per query (bounded per key and per server), the budget, and
cancellation when the client goes away.

* :func:`query_slot` — at most ``segments.query_concurrency_per_key`` queries per API key and
  ``segments.query_concurrency`` in all run at once in this server; one more is a 429 ``too_many_queries``
  naming the limit, with ``Retry-After`` the seconds until the oldest running query's budget ends at the
  latest. The slot covers the whole request (bringing the profile tables up to date included).
* :func:`run_budgeted` — runs the query in a worker thread under the workspace's
  :class:`~takt.segments.budget.QueryBudget` and watches the client: when it disconnects the query is
  cancelled in the engine (not left running for nobody).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from takt.api.context import ApiContext
from takt.errors import TaktError
from takt.segments.budget import BudgetedQuery, QueryBudget

log = logging.getLogger(__name__)

T = TypeVar("T")
DISCONNECT_POLL_SECONDS = 0.1


def too_many_queries(message: str, retry_after: int) -> TaktError:
    return TaktError(message=message, code="too_many_queries", status=429,
                     headers={"Retry-After": str(retry_after)})


@dataclass
class QuerySlots:
    """The running segment queries of one server (used from the event loop only: no lock)."""

    per_key: int
    total: int
    timeout_seconds: float
    running: dict[str, list[float]] = field(default_factory=dict)
    """key id → the deadlines of its running queries."""

    def _retry_after(self, deadlines: list[float]) -> int:
        soonest = min(deadlines) - time.monotonic() if deadlines else 1.0
        return max(1, math.ceil(soonest))

    def acquire(self, key_id: str) -> float:
        mine = self.running.get(key_id, [])
        if len(mine) >= self.per_key:
            raise too_many_queries(
                f"this key already runs {len(mine)} segment queries (count, members, explain), the most one key "
                f"may run at once (segments.query_concurrency_per_key = {self.per_key}); retry when one ends",
                self._retry_after(mine))
        everyone = [d for ds in self.running.values() for d in ds]
        if len(everyone) >= self.total:
            raise too_many_queries(
                f"the server already runs {len(everyone)} segment queries (count, members, explain), the most it "
                f"runs at once (segments.query_concurrency = {self.total}); retry when one ends",
                self._retry_after(everyone))
        deadline = time.monotonic() + self.timeout_seconds
        self.running.setdefault(key_id, []).append(deadline)
        return deadline

    def release(self, key_id: str, deadline: float) -> None:
        mine = self.running.get(key_id, [])
        if deadline in mine:
            mine.remove(deadline)
        if not mine:
            self.running.pop(key_id, None)


def budget_of(c: ApiContext) -> QueryBudget:
    budget = c.extras.get("query_budget")
    if budget is None:
        budget = c.extras.setdefault("query_budget", QueryBudget.from_settings(c.settings))
    return budget  # type: ignore[no-any-return]


def _slots(c: ApiContext) -> QuerySlots:
    slots = c.extras.get("query_slots")
    if slots is None:
        s = c.settings
        slots = c.extras.setdefault("query_slots", QuerySlots(
            per_key=int(s["segments.query_concurrency_per_key"]), total=int(s["segments.query_concurrency"]),
            timeout_seconds=float(s["segments.query_timeout_seconds"])))
    return slots  # type: ignore[no-any-return]


@contextlib.asynccontextmanager
async def query_slot(c: ApiContext, key_id: str) -> AsyncIterator[None]:
    slots = _slots(c)
    deadline = slots.acquire(key_id)
    try:
        yield
    finally:
        slots.release(key_id, deadline)


async def run_budgeted(request: Request, c: ApiContext, work: Callable[[BudgetedQuery], T]) -> T:
    """``work(query)`` in a worker thread, ``query`` being a fresh budgeted query of the workspace's storage;
    cancelled in the engine when the client disconnects meanwhile."""
    query = c.storage.budgeted_query(budget_of(c))
    task: asyncio.Future[Any] = asyncio.ensure_future(run_in_threadpool(work, query))
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=DISCONNECT_POLL_SECONDS)
            if done:
                return task.result()  # type: ignore[no-any-return]
            if await request.is_disconnected():
                log.info("client disconnected from %s: cancelling its segment query", request.url.path)
                query.cancel()
                return await task  # type: ignore[no-any-return]  # raises QueryCancelled
    except asyncio.CancelledError:  # the server is shutting the request down: stop the query with it
        query.cancel()
        raise
