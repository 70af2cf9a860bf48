"""Group commit: many concurrent requests, one writer, one transaction per group.

Each request hands its events to :meth:`GroupCommitWriter.submit` and waits. A single writer thread takes
everything queued (up to ``max_group_events``), appends it to the log in one transaction, and only then
wakes the waiting requests, so an acknowledgement always means the events are committed. When more than
``max_queue_events`` are waiting, new requests are refused with 429 rather than queued without bound.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from takt.errors import TaktError, overloaded
from takt.events.model import Event
from takt.log.base import AppendResult, EventLog


@dataclass
class _Job:
    events: Sequence[Event]
    future: Future[AppendResult]


@dataclass
class WriterStats:
    groups: int = 0
    events: int = 0
    max_group: int = 0
    busy_seconds: float = 0.0
    refused: int = 0


class GroupCommitWriter:
    def __init__(self, log: EventLog, max_queue_events: int = 200_000, max_group_events: int = 20_000,
                 retry_after: int = 1):
        self.log = log
        self.max_queue_events = max_queue_events
        self.max_group_events = max_group_events
        self.retry_after = retry_after
        self.stats = WriterStats()
        self.on_commit: list[Callable[[], None]] = []
        self._queue: deque[_Job] = deque()
        self._pending = 0
        self._cv = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="takt-writer", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        return self._pending

    def enqueue(self, events: Sequence[Event]) -> Future[AppendResult]:
        fut: Future[AppendResult] = Future()
        with self._cv:
            if self._closed:
                raise TaktError("the server is shutting down", code="unavailable", status=503,
                                headers={"Retry-After": str(self.retry_after)})
            if self._pending and self._pending + len(events) > self.max_queue_events:
                self.stats.refused += 1
                raise overloaded(self.retry_after)
            self._queue.append(_Job(events, fut))
            self._pending += len(events)
            self._cv.notify()
        return fut

    async def submit(self, events: Sequence[Event]) -> AppendResult:
        """Append and wait until committed (from an event loop)."""
        return await asyncio.wrap_future(self.enqueue(events))

    def submit_sync(self, events: Sequence[Event], timeout: float | None = None) -> AppendResult:
        return self.enqueue(events).result(timeout)

    def _take(self) -> list[_Job] | None:
        with self._cv:
            while not self._queue and not self._closed:
                self._cv.wait()
            if not self._queue:
                return None
            jobs = [self._queue.popleft()]
            size = len(jobs[0].events)
            while self._queue and size + len(self._queue[0].events) <= self.max_group_events:
                job = self._queue.popleft()
                size += len(job.events)
                jobs.append(job)
            return jobs

    def _run(self) -> None:
        while True:
            jobs = self._take()
            if jobs is None:
                return
            events: list[Event] = []
            for job in jobs:
                events.extend(job.events)
            started = time.perf_counter()
            try:
                self._commit(jobs, events)
            finally:
                with self._cv:
                    self._pending -= len(events)
                self.stats.groups += 1
                self.stats.events += len(events)
                self.stats.max_group = max(self.stats.max_group, len(events))
                self.stats.busy_seconds += time.perf_counter() - started
            for hook in self.on_commit:
                hook()

    def _commit(self, jobs: list[_Job], events: list[Event]) -> None:
        try:
            result = self.log.append(events)
        except Exception:
            # The group failed and nothing of it was stored: commit each request on its own, so one bad
            # request fails alone instead of failing the others grouped with it.
            for job in jobs:
                try:
                    one = self.log.append(job.events)
                except Exception as e:
                    if not job.future.cancelled():
                        job.future.set_exception(_storage_error(e))
                else:
                    if not job.future.cancelled():
                        job.future.set_result(one)
        else:
            for job in jobs:
                if not job.future.cancelled():
                    job.future.set_result(result)

    def close(self, timeout: float = 30.0) -> None:
        """Finish what is queued, then stop."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        self._thread.join(timeout)


def _storage_error(e: BaseException) -> TaktError:
    if isinstance(e, TaktError):
        return e
    return TaktError(f"the event log could not commit: {type(e).__name__}: {e}", code="storage_error",
                     status=503, headers={"Retry-After": "1"})
