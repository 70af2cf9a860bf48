"""Maximum likelihood over log-parameters, shared by the three models."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from takt.errors import TaktError

LOG_BOUND = (-12.0, 12.0)
"""Bounds on each log-parameter: every parameter stays within [6e-6, 1.6e5]."""

_PENALTY = 1e10


@dataclass(frozen=True)
class Estimate:
    params: np.ndarray
    log_likelihood: float
    converged: bool


def maximize(
    log_likelihood: Callable[[np.ndarray], float],
    starts: Sequence[Sequence[float]],
    n: int,
    model: str,
) -> Estimate:
    """Maximise ``log_likelihood(params)`` (a sum over ``n`` customers) over positive parameters.

    The search runs on log-parameters with L-BFGS-B inside :data:`LOG_BOUND` from the first start; the
    further starts and a Nelder-Mead polish are only tried when that search does not report convergence. The objective is the mean negative log-likelihood (so tolerances do not
    depend on the number of customers). Points where the likelihood is not finite (the optimiser may probe
    extreme parameters) get a large finite penalty instead.
    """

    def objective(theta: np.ndarray) -> float:
        with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
            value = log_likelihood(np.exp(theta))
        if not np.isfinite(value):
            return _PENALTY
        return -value / n

    bounds = [LOG_BOUND] * len(starts[0])
    best = None
    for start in starts:
        theta0 = np.log(np.asarray(start, dtype="float64"))
        res = minimize(objective, theta0, method="L-BFGS-B", bounds=bounds,
                       options={"maxiter": 400, "ftol": 1e-13, "gtol": 1e-9})
        if best is None or res.fun < best.fun:
            best = res
        if best.success and best.fun < _PENALTY:
            break
    assert best is not None
    theta, fun = best.x, best.fun
    if not best.success:
        polish = minimize(objective, best.x, method="Nelder-Mead",
                          options={"xatol": 1e-9, "fatol": 1e-13, "maxiter": 1500, "maxfev": 1500})
        inside = np.all(polish.x >= LOG_BOUND[0]) and np.all(polish.x <= LOG_BOUND[1])
        if polish.fun <= best.fun and inside:
            theta, fun = polish.x, polish.fun
    if fun >= _PENALTY:
        raise TaktError(f"{model}: the likelihood is not finite anywhere the search went; the data do not fit "
                        "this model", code="fit_failed")
    on_bound = bool(np.any(np.isclose(theta, LOG_BOUND[0])) or np.any(np.isclose(theta, LOG_BOUND[1])))
    return Estimate(params=np.exp(theta), log_likelihood=float(-fun * n), converged=not on_bound)


def compress(*columns: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """The distinct rows of ``columns`` and how often each occurs: likelihoods are sums over customers, and
    customers with the same data contribute the same term."""
    stacked = np.column_stack([np.asarray(c, dtype="float64") for c in columns])
    rows, counts = np.unique(stacked, axis=0, return_counts=True)
    return [rows[:, i] for i in range(rows.shape[1])], counts.astype("float64")
