"""Population stability: has a feature's (or a score's) distribution moved since training?

The reference is cut into up to ``bins`` quantile bins when the model is trained (:func:`reference`); the
current values are counted in the same bins and compared with the population stability index

    PSI = Σ (cur − ref) · ln(cur / ref)

over the bins, shares floored at ``1e-4`` so an empty bin does not make it infinite. Missing values (NaN) are a
bin of their own. Rules of thumb: < 0.1 stable, 0.1–0.25 some shift, > 0.25 shifted (the thresholds are the
settings ``models.drift_psi`` and ``models.feature_drift_psi``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

FLOOR = 1e-4


def reference(values: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Bin edges (inner quantile cuts) and the share of values per bin (last share: missing values)."""
    v = np.asarray(values, dtype=np.float64)
    ok = v[~np.isnan(v)]
    if len(ok):
        edges = np.unique(np.quantile(ok, np.linspace(0, 1, bins + 1)[1:-1]))
    else:
        edges = np.array([], dtype=np.float64)
    return {"edges": [float(e) for e in edges], "shares": [float(x) for x in _shares(v, edges)]}


def _shares(v: np.ndarray, edges: np.ndarray) -> np.ndarray:
    n = len(v)
    if n == 0:
        return np.zeros(len(edges) + 2)
    nan = np.isnan(v)
    idx = np.searchsorted(edges, v[~nan], side="right")
    counts = np.bincount(idx, minlength=len(edges) + 1).astype(np.float64)
    return np.r_[counts, float(nan.sum())] / n


def psi_between(ref_shares: np.ndarray, cur_shares: np.ndarray) -> float:
    r = np.maximum(np.asarray(ref_shares, dtype=np.float64), FLOOR)
    c = np.maximum(np.asarray(cur_shares, dtype=np.float64), FLOOR)
    return float(np.sum((c - r) * np.log(c / r)))


def psi(ref: dict[str, Any], values: np.ndarray) -> float:
    """PSI of ``values`` against a :func:`reference`."""
    edges = np.asarray(ref["edges"], dtype=np.float64)
    return psi_between(np.asarray(ref["shares"]), _shares(np.asarray(values, dtype=np.float64), edges))
