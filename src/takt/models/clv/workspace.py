"""The workspace's orders as a transaction table, one customer per profile (after identity resolution).

An order is what the profile fold counts as one (``takt.profiles.fold``): a ``track "Order Completed"`` or an
imported ``record`` with ``record_type: order`` whose status is not cancelled, refunded or returned. Its
amount is the first number among ``revenue``, ``total`` and ``value`` (0 when none); an order id seen twice
for the same person (``order_id``, ``orderId``, an import's ``row_key``) counts once, the earliest in the
log. The customer is the profile the event belongs to now, so the orders of people merged later count for
the one person they are.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from takt.events.model import StoredEvent
from takt.projections.runner import ProfileRunner

COLUMNS = ("customer_id", "date", "amount", "order_id")
CLOSED = ("cancelled", "canceled", "refunded", "returned")


@dataclass(frozen=True, slots=True)
class OrderRow:
    position: int
    ts: Any
    amount: float
    order_id: str | None


def _number(*values: Any) -> float | None:
    for v in values:
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            return float(v)
    return None


def order_of(stored: StoredEvent) -> OrderRow | None:
    """The order an event records, or ``None``."""
    ev = stored.event
    p = ev.properties
    if ev.kind == "track" and ev.event == "Order Completed":
        oid = p.get("order_id", p.get("orderId"))
    elif ev.kind == "record" and p.get("record_type") == "order":
        if str(p.get("status") or "completed").lower() in CLOSED:
            return None
        oid = p.get("order_id", p.get("orderId", p.get("row_key")))
    else:
        return None
    amount = _number(p.get("revenue"), p.get("total"), p.get("value"))
    key = str(oid) if isinstance(oid, str | int) and not isinstance(oid, bool) else None
    return OrderRow(stored.position, ev.timestamp, max(amount or 0.0, 0.0), key)


def collect_orders(events: Iterable[StoredEvent], profile_positions: Iterable[tuple[str, Iterable[int]]],
                   progress: Callable[[int], None] | None = None) -> pd.DataFrame:
    """The orders among ``events`` (the log, in position order) by the profile that holds each one
    (``profile_positions``: each profile id with its events' positions). Columns :data:`COLUMNS`."""
    orders: dict[int, OrderRow] = {}
    for se in events:
        row = order_of(se)
        if row is not None:
            orders[se.position] = row
        if progress is not None:
            progress(1)
    owner: dict[int, str] = {}
    for pid, positions in profile_positions:
        for pos in positions:
            if pos in orders:
                owner[pos] = pid
    seen: set[tuple[str, str]] = set()
    out: dict[str, list[Any]] = {c: [] for c in COLUMNS}
    for pos in sorted(owner):
        row, pid = orders[pos], owner[pos]
        if row.order_id is not None:
            if (pid, row.order_id) in seen:
                continue
            seen.add((pid, row.order_id))
        out["customer_id"].append(pid)
        out["date"].append(row.ts)
        out["amount"].append(row.amount)
        out["order_id"].append(row.order_id)
    df = pd.DataFrame(out, columns=list(COLUMNS))
    df["date"] = pd.to_datetime(df["date"], utc=True)
    df["amount"] = df["amount"].astype("float64")
    return df


def workspace_orders(runner: ProfileRunner, progress: Callable[[int], None] | None = None) -> pd.DataFrame:
    """Every order in the runner's log by profile id (bring the runner up to date first)."""
    log = runner.storage.log

    def positions() -> Iterable[tuple[str, list[int]]]:
        for pid in runner.profile_ids():
            with runner.lock:
                state = runner.projector.profile(pid)
                pos = list(state.positions) if state is not None else []
            yield pid, pos

    return collect_orders(log.iter(), positions(), progress)


def order_counts(df: pd.DataFrame) -> Mapping[str, int]:
    return {str(k): int(v) for k, v in df.groupby("customer_id").size().items()}
