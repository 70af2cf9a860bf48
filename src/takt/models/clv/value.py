"""Customer lifetime value: expected purchases × expected spend, optionally discounted.

For a customer with expected cumulative purchases E(t) in (T, T+t] (BG/NBD or Pareto/NBD) and Gamma-Gamma
expected spend per transaction E[M], the value over a horizon of h time units is::

    CLV = E[M] · Σ_{k=1..⌈h⌉} (E(t_k) − E(t_{k−1})) / (1 + d)^(t_k · u / 365.25),   t_k = min(k, h), t_0 = 0

with d the annual discount rate and u the length of the time unit in days: the purchases expected in each
time unit are discounted from the end of that unit. Without discounting (d = 0) this is E[M] · E(h). The
value is of *future* purchases only (the calibration period's are not counted) and is in the currency of
the amounts (revenue, not margin: multiply by a margin yourself).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

DAYS_PER_YEAR = 365.25


def horizon_grid(horizon: float) -> np.ndarray:
    """t_1 … t_K: every whole time unit up to ``horizon``, and ``horizon`` itself."""
    if horizon <= 0:
        raise ValueError("the horizon must be positive")
    k = int(np.ceil(horizon - 1e-9))
    grid = np.arange(1, k + 1, dtype="float64")
    grid[-1] = horizon
    return grid


def lifetime_value(
    cumulative: Callable[[np.ndarray], np.ndarray],
    spend: np.ndarray,
    horizon: float,
    unit_days: float,
    discount_rate: float,
) -> np.ndarray:
    """CLV per customer. ``cumulative(t)`` maps a ``(1, K)`` grid of times to ``(n, K)`` expected purchases."""
    if discount_rate < 0:
        raise ValueError("the discount rate must not be negative")
    if discount_rate == 0:
        purchases = cumulative(np.array([[horizon]]))[:, 0]
        return spend * purchases
    grid = horizon_grid(horizon)
    cum = cumulative(grid[None, :])
    per_step = np.diff(cum, axis=1, prepend=0.0)
    factors = np.exp(-grid * unit_days / DAYS_PER_YEAR * np.log1p(discount_rate))
    return spend * (per_step @ factors)
