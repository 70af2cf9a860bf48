"""The estimated cost of a definition: what its compiled SQL will have to do, counted on the syntax tree.

``explain`` shows it (API and CLI) so a marketer sees before counting that a definition is heavy. It counts,
after segment references are inlined, the work the optimized SQL (:mod:`takt.segments.compile`) does per
profile:

* ``event_scans`` — passes over ``profile_events`` (the optimized SQL merges every event aggregate into one
  grouped pass, so 0 or 1);
* ``aggregates`` — distinct event aggregates computed in that pass (``count``, ``sum``, …), ``windows`` of
  them limited to a time window and ``event_filters`` of them with a ``where`` on event properties (JSON read
  per event, the costliest per-row work);
* ``joins`` — correlated lookups joined per profile: one per trait condition (an ``EXISTS`` over
  ``profile_traits``), interest and touchpoint (scalar subqueries), function (whatever it compiles to), plus
  the join of the merged event pass;
* ``conditions`` — atomic conditions evaluated;
* ``score`` — one unitless number to compare definitions: ``10·event_scans + 2·aggregates + windows +
  5·event_filters + 3·joins + conditions``. It says which definition is heavier, not how many seconds it
  takes: that depends on the data (the engine's own estimate, from its query planner, is shown beside it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from takt.segments import ast as a
from takt.segments.resolve import SegmentLookup, resolve


@dataclass(frozen=True)
class Cost:
    event_scans: int
    aggregates: int
    windows: int
    event_filters: int
    joins: int
    conditions: int

    @property
    def score(self) -> int:
        return (10 * self.event_scans + 2 * self.aggregates + self.windows + 5 * self.event_filters
                + 3 * self.joins + self.conditions)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "score": self.score}

    def text(self) -> str:
        return (f"cost {self.score}: {self.event_scans} event scan{'s' if self.event_scans != 1 else ''}, "
                f"{self.aggregates} aggregate{'s' if self.aggregates != 1 else ''} ({self.windows} windowed, "
                f"{self.event_filters} with an event filter), {self.joins} join{'s' if self.joins != 1 else ''}, "
                f"{self.conditions} condition{'s' if self.conditions != 1 else ''}")


def estimate(node: a.Condition, segments: SegmentLookup | None = None) -> Cost:
    """The cost of ``node`` with its segment references inlined (as the compiler sees it)."""
    aggregates: set[a.Aggregate] = set()
    counts = {"joins": 0, "conditions": 0}

    def operand(op: a.Operand) -> None:
        if isinstance(op, a.Aggregate):
            if op not in aggregates and op.where is not None:
                cond(op.where)
            aggregates.add(op)
        elif isinstance(op, a.TraitRef | a.Interest | a.Touchpoint | a.Call):
            counts["joins"] += 1

    def cond(node: a.Condition) -> None:
        if isinstance(node, a.And | a.Or | a.Not):
            for child in a.children(node):
                cond(child)
            return
        counts["conditions"] += 1
        if isinstance(node, a.CallCondition):
            counts["joins"] += 1
        elif isinstance(node, a.ATOMS):
            operand(node.left)

    cond(resolve(node, segments))
    return Cost(
        event_scans=1 if aggregates else 0,
        aggregates=len(aggregates),
        windows=sum(1 for x in aggregates if x.window is not None),
        event_filters=sum(1 for x in aggregates if x.where is not None),
        joins=counts["joins"] + (1 if aggregates else 0),
        conditions=counts["conditions"],
    )
