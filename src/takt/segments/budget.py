"""Every segment query has a budget: how long it may run and how much memory it may take.

Segment counts, member exports and explain run the compiled SQL of a definition someone wrote; a heavy one
must neither run forever nor starve ingestion. This module is the interface the segments package owns; the
engines implement it under :mod:`takt.storage` (``storage.budgeted_query(budget)``):

* :class:`QueryBudget` — the limits, from settings (``segments.query_*``);
* :class:`BudgetedQuery` — one query run under a budget on a connection of its own, which another thread
  may :meth:`~BudgetedQuery.cancel` (the client went away);
* :class:`QueryTimeout`, :class:`QueryMemory`, :class:`QueryCancelled` — what an over-budget query raises:
  ``TaktError``\\ s with the code naming the limit, never a 500.

What each limit means on each engine is in ``docs/segments.md`` ("Budgets").
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from takt.errors import TaktError

OVER_BUDGET_STATUS = 422
"""An over-budget query: the request was well formed, but the definition cannot be evaluated within the
budget. Asking again gives the same answer (unlike a 429 or a 503); a lighter definition or a larger budget
helps."""


class QueryTimeout(TaktError):
    def __init__(self, seconds: float):
        super().__init__(
            message=f"the segment query was stopped after {seconds:g}s (segments.query_timeout_seconds); "
                    "simplify the definition or raise the budget",
            code="query_timeout", status=OVER_BUDGET_STATUS,
            errors=[{"field": "segments.query_timeout_seconds", "reason": f"limit {seconds:g}s reached"}])


class QueryMemory(TaktError):
    def __init__(self, limit: str, setting: str):
        super().__init__(
            message=f"the segment query was stopped: it needed more than {limit} of memory or spill ({setting}); "
                    "simplify the definition or raise the budget",
            code="query_memory", status=OVER_BUDGET_STATUS,
            errors=[{"field": setting, "reason": f"limit {limit} reached"}])


class QueryCancelled(TaktError):
    def __init__(self) -> None:
        # 499 (nginx's "client closed request"): nobody reads it, the client is gone; logged as such
        super().__init__(message="the segment query was cancelled: the client disconnected",
                         code="query_cancelled", status=499)


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
          "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


def parse_size(text: str) -> int:
    """``"64MB"`` → bytes (DuckDB's reading: KB/MB/GB are powers of 1000, KiB/MiB/GiB of 1024)."""
    m = _SIZE.fullmatch(str(text).strip())
    if m is None:
        raise ValueError(f"expected a size such as 64MB, got {text!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def size_text(n: int) -> str:
    for unit, k in (("GB", 1000**3), ("MB", 1000**2), ("KB", 1000)):
        if n >= k:
            return f"{n / k:g}{unit}"
    return f"{n}B"


@dataclass(frozen=True)
class QueryBudget:
    """The limits of one segment query (see the settings' help for each)."""

    timeout_seconds: float = 30.0
    memory_share: float = 0.25
    """DuckDB: the share of the database's memory limit the query's intermediates may grow by."""
    work_mem: str = "64MB"
    """PostgreSQL: ``work_mem`` of the query (memory per sort or hash before it spills)."""
    spill_limit: str = "1GB"
    """Both: the most the query may spill to temporary files."""

    @classmethod
    def from_settings(cls, settings: Any) -> QueryBudget:
        return cls(timeout_seconds=float(settings["segments.query_timeout_seconds"]),
                   memory_share=float(settings["segments.query_memory_share"]),
                   work_mem=str(settings["segments.query_work_mem"]),
                   spill_limit=str(settings["segments.query_spill_limit"]))


class BudgetedQuery(ABC):
    """One SQL query run under a :class:`QueryBudget`, on a connection of its own.

    :meth:`run` is called once, in a worker thread; it returns the rows, or raises :class:`QueryTimeout`,
    :class:`QueryMemory` or :class:`QueryCancelled` (after :meth:`cancel`), having stopped the query in the
    engine. :meth:`cancel` may be called from any thread, before, during or after :meth:`run`.
    """

    def __init__(self, budget: QueryBudget):
        self.budget = budget

    @abstractmethod
    def run(self, sql: str) -> list[tuple[Any, ...]]:
        ...

    @abstractmethod
    def cancel(self) -> None:
        ...

    @abstractmethod
    def estimate(self, sql: str) -> EngineEstimate:
        """The engine's planner estimate for ``sql`` (its EXPLAIN, not running the query), under the budget."""


@dataclass(frozen=True)
class EngineEstimate:
    """What the engine's query planner expects of a query, from its EXPLAIN (not running it)."""

    engine: str
    operators: int
    """Plan operators (scans, joins, aggregates, …)."""
    estimated_rows: int
    """Rows the planner expects all operators together to produce (its cardinality estimates, summed)."""
    planner_cost: float | None = None
    """PostgreSQL's total cost of the plan (its own units: sequential page reads); ``None`` on DuckDB."""

    def to_json(self) -> dict[str, Any]:
        return {"engine": self.engine, "operators": self.operators, "estimated_rows": self.estimated_rows,
                "planner_cost": self.planner_cost}
