"""Evaluation of a score against 0/1 outcomes, in numpy: AUC, PR-AUC, lift at 10 %, calibration error.

- **AUC**: the probability that a random positive scores above a random negative (ties count half), from the
  rank-sum (Mann–Whitney) formula with average ranks for ties.
- **PR-AUC**: average precision, Σ (recallₖ − recallₖ₋₁) · precisionₖ over the distinct score thresholds from the
  top (tied scores enter together).
- **lift@10 %**: the positive rate among the top 10 % by score (``ceil(0.1 n)`` rows; ties at the boundary
  broken by order) divided by the overall positive rate.
- **calibration error** (expected calibration error): scores cut into 10 equal-width bins on [0, 1]; the
  row-weighted mean of ``|mean score − positive rate|`` per bin. Only meaningful for probabilities; for a
  baseline that is not a probability it is reported as ``None``.

Undefined values (no positive or no negative) are ``None``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _check(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.float64).ravel()
    s = np.asarray(s, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.shape[0]} vs {s.shape[0]}")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("labels must be 0 or 1")
    if np.isnan(s).any():
        raise ValueError("scores must not be NaN")
    return y, s


def _ranks(s: np.ndarray) -> np.ndarray:
    """Average ranks from 1 (ties share the mean of their ranks)."""
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    n = len(s)
    starts = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])
    ends = np.r_[starts[1:], n]
    avg = (starts + ends + 1) / 2.0  # ranks start..end-1 (0-based) → mean of start+1..end
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def auc(y: np.ndarray, s: np.ndarray) -> float | None:
    y, s = _check(y, s)
    pos = int(y.sum())
    neg = len(y) - pos
    if pos == 0 or neg == 0:
        return None
    r = _ranks(s)
    return float((r[y == 1].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def pr_auc(y: np.ndarray, s: np.ndarray) -> float | None:
    y, s = _check(y, s)
    pos = y.sum()
    if pos == 0:
        return None
    order = np.argsort(-s, kind="mergesort")
    ys, ss = y[order], s[order]
    tp = np.cumsum(ys)
    # the last row of each group of tied scores: a threshold
    last = np.r_[ss[1:] != ss[:-1], True]
    tp_at = tp[last]
    n_at = (np.arange(1, len(ys) + 1))[last]
    precision = tp_at / n_at
    recall = tp_at / pos
    prev = np.r_[0.0, recall[:-1]]
    return float(np.sum((recall - prev) * precision))


def lift_at(y: np.ndarray, s: np.ndarray, share: float = 0.1) -> float | None:
    y, s = _check(y, s)
    n = len(y)
    base = y.mean() if n else 0.0
    if n == 0 or base == 0:
        return None
    k = max(1, math.ceil(share * n))
    top = np.argsort(-s, kind="mergesort")[:k]
    return float(y[top].mean() / base)


def calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float | None:
    y, p = _check(y, p)
    if len(y) == 0 or p.min() < 0 or p.max() > 1:
        return None
    idx = np.minimum((p * bins).astype(np.int64), bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        k = int(m.sum())
        if k:
            total += k * abs(float(p[m].mean()) - float(y[m].mean()))
    return total / len(y)


def evaluate(y: np.ndarray, s: np.ndarray, probability: bool = True) -> dict[str, Any]:
    """All metrics of scores ``s`` against outcomes ``y`` (``probability``: whether calibration applies)."""
    y, s = _check(y, s)
    return {
        "auc": auc(y, s),
        "pr_auc": pr_auc(y, s),
        "lift_10": lift_at(y, s, 0.1),
        "calibration_error": calibration_error(y, s) if probability else None,
        "positives": int(y.sum()),
        "rows": len(y),
    }
