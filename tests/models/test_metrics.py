"""Metrics and drift against hand-computed examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from takt.models import drift, metrics

Y = np.array([1, 0, 1, 0, 0, 1])
S = np.array([0.9, 0.8, 0.8, 0.3, 0.1, 0.05])


def test_auc_by_hand_with_a_tie() -> None:
    # positives .9 / .8 / .05 against negatives .8 / .3 / .1: 3 + (0.5 + 2) + 0 wins of 9 pairs
    assert metrics.auc(Y, S) == pytest.approx(5.5 / 9)


def test_auc_extremes_and_undefined() -> None:
    assert metrics.auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.4])) == 1.0
    assert metrics.auc(np.array([1, 1, 0, 0]), np.array([0.1, 0.2, 0.3, 0.4])) == 0.0
    assert metrics.auc(np.array([1, 0, 1, 0]), np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    assert metrics.auc(np.array([1, 1]), np.array([0.1, 0.2])) is None


def test_pr_auc_by_hand() -> None:
    # thresholds .9 (P 1, R 1/3), .8 (P 2/3, R 2/3), .05 (P 1/2, R 1)
    assert metrics.pr_auc(Y, S) == pytest.approx(1 / 3 * 1 + 1 / 3 * 2 / 3 + 1 / 3 * 1 / 2)
    assert metrics.pr_auc(np.array([0, 0]), np.array([0.1, 0.2])) is None


def test_lift_at_ten_percent() -> None:
    # top ceil(0.6) = 1 row is a positive; base rate 1/2
    assert metrics.lift_at(Y, S) == pytest.approx(2.0)
    y = np.array([1] * 2 + [0] * 18)
    s = np.linspace(1, 0, 20)
    assert metrics.lift_at(y, s) == pytest.approx(1.0 / 0.1)  # top 2 rows both positive, base 0.1


def test_calibration_error_by_hand() -> None:
    # bins: .9 → |.9−1|; .8,.8 → 2·|.8−.5|; .3 → .3; .1 → .1; .05 → |.05−1|
    expected = (0.1 + 0.6 + 0.3 + 0.1 + 0.95) / 6
    assert metrics.calibration_error(Y, S) == pytest.approx(expected)
    assert metrics.calibration_error(Y, S * 10) is None  # not probabilities


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="length"):
        metrics.auc(np.array([1, 0]), np.array([0.1]))
    with pytest.raises(ValueError, match="0 or 1"):
        metrics.auc(np.array([2, 0]), np.array([0.1, 0.2]))


def test_psi_zero_for_same_distribution_and_grows_with_shift() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=5000)
    ref = drift.reference(a)
    assert drift.psi(ref, a) == pytest.approx(0.0, abs=1e-12)
    assert drift.psi(ref, rng.normal(size=5000)) < 0.05
    assert drift.psi(ref, rng.normal(loc=1.0, size=5000)) > 0.25


def test_psi_by_hand() -> None:
    # two bins at 0.5/0.5 vs 0.9/0.1: 0.4·ln(1.8) + (−0.4)·ln(0.2)
    assert drift.psi_between(np.array([0.5, 0.5]), np.array([0.9, 0.1])) == pytest.approx(
        0.4 * math.log(1.8) - 0.4 * math.log(0.2))


def test_psi_counts_missing_values_as_a_bin() -> None:
    ref = drift.reference(np.array([1.0, 2.0, 3.0, 4.0]))
    assert ref["shares"][-1] == 0.0
    assert drift.psi(ref, np.array([np.nan, np.nan, 1.0, 4.0])) > 0.25
