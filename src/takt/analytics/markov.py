"""The Markov removal effect, solved exactly.

Journeys are chains of states ``(start) → touchpoint → … → (conversion) | (null)``; the transition
probabilities are the observed transition counts normalised per state. The probability of reaching
``(conversion)`` from ``(start)`` is the absorption probability of an absorbing Markov chain: with ``Q`` the
transitions among transient states and ``r`` those into ``(conversion)``, ``x = (I - Q)⁻¹ r`` (a linear solve,
no simulation). Removing a touchpoint sends every transition into it to ``(null)``; its *removal effect* is
``1 - P(conversion without it) / P(conversion)``. Credits share the conversions in proportion to the removal
effects, so they sum to the conversions attributed.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

START, CONVERSION, NULL = "(start)", "(conversion)", "(null)"


def conversion_probability(counts: Mapping[tuple[str, str], int], removed: str | None = None) -> float:
    """P(conversion) from ``(start)``, with ``removed`` (a touchpoint) taken out of the chain."""
    totals: dict[str, int] = {}
    for (src, _), n in counts.items():
        if src != removed:
            totals[src] = totals.get(src, 0) + n
    if not totals.get(START):
        return 0.0
    states = [START, *sorted(s for s in totals if s != START)]
    index = {s: i for i, s in enumerate(states)}
    q = np.zeros((len(states), len(states)))
    r = np.zeros(len(states))
    for (src, dst), n in counts.items():
        if src == removed or n == 0:
            continue
        p = n / totals[src]
        if dst == CONVERSION:
            r[index[src]] += p
        elif dst in index and dst != removed:
            q[index[src], index[dst]] += p
        # into (null), into the removed touchpoint, or into a state never left (none in recorded journeys)
    x = np.linalg.solve(np.eye(len(states)) - q, r)
    return float(x[0])


def removal_effects(counts: Mapping[tuple[str, str], int]) -> tuple[float, dict[str, float]]:
    """(P(conversion), removal effect per touchpoint)."""
    base = conversion_probability(counts)
    channels = sorted({s for s, _ in counts if s != START} | {d for _, d in counts if d not in (CONVERSION, NULL)})
    if base <= 0:
        return base, {c: 0.0 for c in channels}
    return base, {c: max(0.0, 1.0 - conversion_probability(counts, c) / base) for c in channels}


def credits(counts: Mapping[tuple[str, str], int], conversions: int) -> dict[str, float]:
    """``conversions`` shared in proportion to the removal effects."""
    _, effects = removal_effects(counts)
    total = sum(effects.values())
    if total <= 0 or conversions == 0:
        return {c: 0.0 for c in effects}
    return {c: conversions * e / total for c, e in effects.items()}
