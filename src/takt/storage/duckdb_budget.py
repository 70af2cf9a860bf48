"""Segment queries under a budget on DuckDB (:class:`takt.segments.budget.BudgetedQuery`).

DuckDB has no statement timeout and no hard per-query memory limit (``memory_limit`` and
``max_temp_directory_size`` hold for the whole database; ``threads`` too). What holds, measured with DuckDB
2.0 (``docs/segments.md``, "Budgets"):

* the query runs on a **cursor of its own** (a DuckDB connection to the same database), so
  ``cursor.interrupt()`` stops that query and nothing else (the writer's appends go on);
* a **watchdog thread** interrupts it when the deadline passes, when the client went away (:meth:`cancel`), or
  when the database's memory for query intermediates (``duckdb_memory()`` without cached table blocks) has
  grown by more than the query's share of ``memory_limit`` since it started, or its temporary (spill) storage
  by more than the spill limit. The growth is the database's, not this query's alone: with concurrent
  queries the check is conservative (a query may be stopped for what another one took);
* ``SET operator_memory_limit`` (a per-connection setting) asks the spilling operators (sort, hash aggregate,
  hash join) to keep their intermediates under the same share; it is a soft hint only — in our measurements
  it did not lower their peak memory at all — so the watchdog is what enforces the budget;
* a query that hits the database's own ``memory_limit`` (DuckDB's OutOfMemoryException) is over budget too.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any

import duckdb

from takt.segments.budget import (
    BudgetedQuery,
    EngineEstimate,
    QueryBudget,
    QueryCancelled,
    QueryMemory,
    QueryTimeout,
    parse_size,
    size_text,
)

log = logging.getLogger(__name__)

# Blocks of stored tables (evictable cache), not what a query builds.
_CACHED_TAGS = ("BASE_TABLE", "METADATA", "ART_INDEX", "OVERFLOW_STRINGS")
MEMORY_SQL = ("SELECT coalesce(sum(memory_usage_bytes), 0), coalesce(sum(temporary_storage_bytes), 0) "
              f"FROM duckdb_memory() WHERE tag NOT IN ({', '.join(repr(t) for t in _CACHED_TAGS)})")
POLL_SECONDS = 0.05


def memory_limit_bytes(con: duckdb.DuckDBPyConnection) -> int:
    rows = con.execute("SELECT current_setting('memory_limit')").fetchall()
    try:
        return parse_size(str(rows[0][0]))
    except ValueError:  # no limit set: DuckDB's own default, 80% of the machine's memory
        log.debug("unreadable DuckDB memory_limit %r; using 80%% of RAM", rows[0][0])
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 0.8)


class DuckDBBudgetedQuery(BudgetedQuery):
    def __init__(self, con: duckdb.DuckDBPyConnection, budget: QueryBudget):
        super().__init__(budget)
        self._con = con
        self._cur: duckdb.DuckDBPyConnection | None = None
        self._reason: str | None = None
        self._lock = threading.Lock()
        self._done = threading.Event()
        self.memory_bytes = 0
        self.spill_bytes = parse_size(budget.spill_limit)

    def cancel(self) -> None:
        self._stop("cancel")

    def _stop(self, reason: str) -> None:
        with self._lock:
            if self._reason is None:
                self._reason = reason
            cur = self._cur
        if cur is not None and not self._done.is_set():
            try:
                cur.interrupt()
            except duckdb.Error:
                log.debug("interrupt after the query ended", exc_info=True)

    def _usage(self, mon: duckdb.DuckDBPyConnection) -> tuple[int, int]:
        row = mon.execute(MEMORY_SQL).fetchall()[0]
        return int(row[0]), int(row[1])

    def _watch(self, mon: duckdb.DuckDBPyConnection, start: tuple[int, int], deadline: float) -> None:
        try:
            while not self._done.wait(POLL_SECONDS):
                if self._reason is not None:  # re-sent until the query has noticed it
                    self._stop(self._reason)
                    continue
                if time.monotonic() >= deadline:
                    self._stop("timeout")
                    continue
                mem, spill = self._usage(mon)
                if mem - start[0] > self.memory_bytes:
                    self._stop("memory")
                elif spill - start[1] > self.spill_bytes:
                    self._stop("spill")
        except duckdb.Error:  # the database is closing: stop the query with it
            log.warning("segment query watchdog lost its connection; stopping the query", exc_info=True)
            self._stop("cancel")
        finally:
            mon.close()

    def run(self, sql: str) -> list[tuple[Any, ...]]:
        budget = self.budget
        cur = self._con.cursor()
        mon = self._con.cursor()
        try:
            limit = memory_limit_bytes(cur)
            self.memory_bytes = max(1, int(limit * budget.memory_share))
            cur.execute(f"SET operator_memory_limit = '{self.memory_bytes}B'")  # an integer we computed
            start = self._usage(mon)
        except BaseException:
            mon.close()
            cur.close()
            raise
        with self._lock:
            self._cur = cur
        watchdog = threading.Thread(target=self._watch, args=(mon, start, time.monotonic() + budget.timeout_seconds),
                                    name="takt-query-watchdog", daemon=True)
        watchdog.start()
        try:
            if self._reason is not None:
                raise duckdb.InterruptException("stopped before it started")
            return list(cur.execute(sql).fetchall())
        except duckdb.InterruptException:
            raise self._error() from None
        except duckdb.OutOfMemoryException:
            raise QueryMemory(f"the database's memory limit ({size_text(limit)})", "duckdb_memory_limit") from None
        finally:
            self._done.set()
            watchdog.join()
            with self._lock:
                self._cur = None
            cur.close()

    def estimate(self, sql: str) -> EngineEstimate:
        rows = self.run("EXPLAIN (FORMAT JSON) " + sql)
        nodes: list[Any] = list(json.loads(rows[0][1])) if rows else []
        operators = estimated = 0
        while nodes:
            n = nodes.pop()
            operators += 1
            card = str(n.get("extra_info", {}).get("Estimated Cardinality", "0")).lstrip("~")
            estimated += int(card) if card.isdigit() else 0
            nodes.extend(n.get("children", []))
        return EngineEstimate("duckdb", operators, estimated)

    def _error(self) -> Exception:
        reason = self._reason
        if reason == "timeout":
            return QueryTimeout(self.budget.timeout_seconds)
        if reason == "memory":
            return QueryMemory(f"{size_text(self.memory_bytes)} (a {self.budget.memory_share:g} share of "
                               "duckdb_memory_limit)", "segments.query_memory_share")
        if reason == "spill":
            return QueryMemory(f"{size_text(self.spill_bytes)} of spill", "segments.query_spill_limit")
        return QueryCancelled()
