"""Segment queries under a budget on PostgreSQL (:class:`takt.segments.budget.BudgetedQuery`).

The query runs in a transaction of its own on a pooled connection, after
``set_config(…, is_local => true)`` (``SET LOCAL``: gone at the transaction's end, so the pooled connection is
unchanged for the next user) of

* ``statement_timeout`` — PostgreSQL cancels the statement at the deadline (SQLSTATE 57014);
* ``work_mem`` — memory per sort or hash before it spills to temporary files (a soft bound, per operation);
* ``temp_file_limit`` — the most the session may spill (SQLSTATE 53400 beyond it); setting it needs
  superuser or ``GRANT SET ON PARAMETER temp_file_limit`` (PostgreSQL 15), so without that privilege it is
  left as the server has it and a warning says so once.

:meth:`cancel` sends PostgreSQL a cancel request for the running statement (``connection.cancel()``).
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from takt.segments.budget import (
    BudgetedQuery,
    EngineEstimate,
    QueryBudget,
    QueryCancelled,
    QueryMemory,
    QueryTimeout,
    parse_size,
)

log = logging.getLogger(__name__)


def _kb(size: str) -> str:
    return f"{max(64, parse_size(size) // 1024)}kB"


class PostgresBudgetedQuery(BudgetedQuery):
    def __init__(self, pool: Any, budget: QueryBudget, temp_limit_allowed: bool):
        super().__init__(budget)
        self._pool = pool
        self._temp_limit = temp_limit_allowed
        self._con: psycopg.Connection[Any] | None = None
        self._cancelled = False
        self._lock = threading.Lock()

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            con = self._con
        if con is not None:
            try:
                con.cancel()
            except psycopg.Error:
                log.debug("cancel after the query ended", exc_info=True)

    def run(self, sql: str) -> list[tuple[Any, ...]]:
        b = self.budget
        with self._pool.connection() as con:
            try:
                with con.transaction():
                    con.execute("SELECT set_config('statement_timeout', %s, true), set_config('work_mem', %s, true)",
                                [f"{max(1, int(b.timeout_seconds * 1000))}ms", _kb(b.work_mem)])
                    if self._temp_limit:
                        con.execute("SELECT set_config('temp_file_limit', %s, true)", [_kb(b.spill_limit)])
                    with self._lock:
                        if self._cancelled:
                            raise QueryCancelled()
                        self._con = con
                    try:
                        return list(con.execute(sql).fetchall())
                    finally:
                        with self._lock:
                            self._con = None
            except pg_errors.QueryCanceled:
                if self._cancelled:
                    raise QueryCancelled() from None
                raise QueryTimeout(b.timeout_seconds) from None
            except pg_errors.ConfigurationLimitExceeded:  # temp_file_limit
                raise QueryMemory(f"{b.spill_limit} of spill", "segments.query_spill_limit") from None
            except pg_errors.OutOfMemory:
                raise QueryMemory(f"the server's memory (work_mem {b.work_mem})", "segments.query_work_mem") from None

    def estimate(self, sql: str) -> EngineEstimate:
        rows = self.run("EXPLAIN (FORMAT JSON) " + sql)
        doc = rows[0][0] if rows else [{}]
        plan = (json.loads(doc) if isinstance(doc, str) else doc)[0].get("Plan", {})
        nodes, operators, estimated = [plan], 0, 0
        while nodes:
            n = nodes.pop()
            operators += 1
            estimated += int(n.get("Plan Rows", 0))
            nodes.extend(n.get("Plans", []))
        return EngineEstimate("postgres", operators, estimated, float(plan.get("Total Cost", 0.0)))


def may_set_temp_file_limit(pool: Any) -> bool:
    """Whether this role may set ``temp_file_limit`` (superuser, or granted SET on it)."""
    with pool.connection() as con:
        row = con.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
        allowed = bool(row and row[0])
        if not allowed and con.info.server_version >= 150000:
            row = con.execute("SELECT has_parameter_privilege('temp_file_limit', 'SET')").fetchone()
            allowed = bool(row and row[0])
    if not allowed:
        log.warning("this PostgreSQL role may not set temp_file_limit: segment queries' spill is not limited "
                    "(segments.query_spill_limit); grant it with GRANT SET ON PARAMETER temp_file_limit TO …")
    return allowed
