"""Customer lifetime value models: validation against published CDNOW estimates, independent checks of the
likelihoods and expectations by numerical integration, data preparation, errors, and the CLI."""

from __future__ import annotations

import json
import math
import re
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import integrate, stats
from scipy.special import roots_genlaguerre, roots_jacobi

from takt.cli.main import main
from takt.errors import TaktError
from takt.models.clv import ClvFit, bgnbd, fit_summary, fit_transactions, gammagamma, paretonbd
from takt.models.clv.bgnbd import BgNbd
from takt.models.clv.gammagamma import GammaGamma
from takt.models.clv.paretonbd import ParetoNbd
from takt.models.clv.value import horizon_grid, lifetime_value
from takt.models.transactions import parse_dates, read_transactions, summarize

CDNOW = Path(__file__).resolve().parents[1] / "data" / "cdnow" / "CDNOW_sample.txt"
CAL_END = date(1997, 9, 30)


def _rel(actual: float, expected: float) -> float:
    return abs(actual - expected) / abs(expected)


@pytest.fixture(scope="module")
def cdnow_frame() -> pd.DataFrame:
    return read_transactions(CDNOW, header=False)


@pytest.fixture(scope="module")
def cdnow(cdnow_frame: pd.DataFrame) -> ClvFit:
    return fit_transactions(cdnow_frame, customer_col="2", date_col="3", amount_col="5",
                            calibration_end=CAL_END, horizon_weeks=39)


# ---------------------------------------------------------------- published estimates (CDNOW 1/10 sample)
def test_cdnow_preparation_matches_the_literature(cdnow: ClvFit) -> None:
    """Fader, Hardie & Lee (2005, Marketing Science 24(2)) analyse 2,357 customers, of whom 946 made a
    repeat purchase in the 39-week calibration period (the customers the Gamma-Gamma model is fitted on in
    FHL 2005, JMR 42(4))."""
    c = cdnow.customers
    assert len(c) == 2357
    assert int((c["frequency"] > 0).sum()) == 946
    assert cdnow.gamma_gamma.n_customers == 946
    # every customer's first purchase is in Q1 1997, so ages lie between 26 and 39 weeks
    assert c["T"].max() == pytest.approx(272 / 7)
    assert c["T"].min() >= (CAL_END - date(1997, 3, 31)).days / 7


def test_bg_nbd_reproduces_fader_hardie_lee_2005(cdnow: ClvFit) -> None:
    """BG/NBD on CDNOW: r = 0.243, α = 4.414, a = 0.793, b = 2.426, LL = −9582.4 (Fader, Hardie & Lee 2005,
    "Counting your customers the easy way", Marketing Science 24(2), 275-284; the same values are the
    reference of CLVTools' test suite, tests/testthat/test_correctness_bgnbd.R)."""
    m = cdnow.bg_nbd
    for got, published in ((m.r, 0.243), (m.alpha, 4.414), (m.a, 0.793), (m.b, 2.426)):
        assert _rel(got, published) < 0.01
    assert abs(m.log_likelihood - (-9582.4)) < 0.5
    assert m.converged


def test_pareto_nbd_reproduces_the_published_estimates(cdnow: ClvFit) -> None:
    """Pareto/NBD on CDNOW: r = 0.553, α = 10.578, s = 0.606, β = 11.669, LL = −9595.0, reported alongside
    the BG/NBD in Fader, Hardie & Lee (2005) (rounded there to 0.55, 10.58, 0.61, 11.67; CLVTools'
    tests/testthat/test_correctness_pnbd.R uses the three-decimal values)."""
    m = cdnow.pareto_nbd
    for got, published in ((m.r, 0.553), (m.alpha, 10.578), (m.s, 0.606), (m.beta, 11.669)):
        assert _rel(got, published) < 0.02
    assert abs(m.log_likelihood - (-9595.0)) < 0.5
    assert m.converged


def test_gamma_gamma_reproduces_fader_hardie_lee_2005(cdnow: ClvFit) -> None:
    """Gamma-Gamma on the 946 repeat customers' mean repeat-transaction value in the calibration period:
    p = 6.25, q = 3.74, v = 15.44 (Fader, Hardie & Lee 2005, "RFM and CLV: using iso-value curves",
    JMR 42(4); Fader & Hardie 2013, "The Gamma-Gamma model of monetary value", brucehardie.com/notes/025;
    CLVTools' tests/testthat/test_correctness_gg.R uses these with LL = −4055.9177)."""
    g = cdnow.gamma_gamma
    for got, published in ((g.p, 6.25), (g.q, 3.74), (g.v, 15.44)):
        assert _rel(got, published) < 0.01
    assert abs(g.log_likelihood - (-4055.9177)) < 0.05


def test_bg_nbd_conditional_expectation_worked_example() -> None:
    """At the published parameters, a customer with x = 2, t_x = 30.43, T = 38.86 is expected to make 1.226
    purchases in the next 39 weeks: the worked example of FHL (2005) (also BTYD's example call
    ``bgnbd.ConditionalExpectedTransactions(c(0.243, 4.414, 0.793, 2.426), 39, 2, 30.43, 38.86)``)."""
    m = BgNbd(0.243, 4.414, 0.793, 2.426)
    got = bgnbd.expected_purchases(m, np.array([2.0]), np.array([30.43]), np.array([38.86]), 39.0)
    assert got[0] == pytest.approx(1.226, abs=5e-4)


def test_fits_do_not_depend_on_the_time_unit(cdnow_frame: pd.DataFrame, cdnow: ClvFit) -> None:
    """Measured in days the shape parameters are unchanged and the scale parameters are 7 times larger;
    predictions over the same horizon are the same."""
    days = fit_transactions(cdnow_frame, customer_col="2", date_col="3", amount_col="5",
                            calibration_end=CAL_END, horizon_weeks=39, time_unit="days")
    w, d = cdnow.bg_nbd, days.bg_nbd
    assert _rel(d.r, w.r) < 1e-3 and _rel(d.a, w.a) < 1e-3 and _rel(d.b, w.b) < 1e-3
    assert _rel(d.alpha, 7 * w.alpha) < 1e-3
    assert _rel(days.pareto_nbd.beta, 7 * cdnow.pareto_nbd.beta) < 1e-2
    a = cdnow.customers.set_index("customer_id")
    b = days.customers.set_index("customer_id").loc[a.index]
    np.testing.assert_allclose(b["expected_purchases"], a["expected_purchases"], rtol=1e-3)
    np.testing.assert_allclose(b["pareto_nbd_clv"], a["pareto_nbd_clv"], rtol=1e-2)


# ---------------------------------------------------------------- likelihoods by hand and by integration
def test_bg_nbd_likelihood_hand_case() -> None:
    """x = 0: L = (α/(α+T))^r, whatever a and b. With r = 1, α = 1, T = 1: L = 1/2; with r = 2, α = 2,
    T = 2: 1/4."""
    ll = bgnbd.log_likelihood((1.0, 1.0, 0.7, 3.0), np.array([0.0, 0.0]), np.array([0.0, 0.0]),
                              np.array([1.0, 1.0]))
    assert ll == pytest.approx([math.log(0.5)] * 2)
    ll2 = bgnbd.log_likelihood((2.0, 2.0, 5.0, 0.5), np.array([0.0]), np.array([0.0]), np.array([2.0]))
    assert ll2[0] == pytest.approx(math.log(0.25))


def _bg_individual(lam: np.ndarray, p: np.ndarray, x: int, t_x: float, T: float) -> np.ndarray:
    # alive after x purchases and no purchase in (t_x, T], or dropped out right after the x-th purchase
    alive = (1 - p) ** x * lam**x * np.exp(-lam * T)
    dropped = p * (1 - p) ** (x - 1) * lam**x * np.exp(-lam * t_x) if x > 0 else 0.0
    return alive + dropped


def _gamma_rule(shape: float, rate: float, tilt: float, n: int = 80) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights with Σ w f(λ) ≈ E[f(λ)] for λ ~ Gamma(shape, rate): generalised Gauss-Laguerre for
    Gamma(shape, rate + tilt), reweighted by the density ratio (rate/(rate+tilt))^shape e^{tilt λ}, which puts
    the nodes where integrands with a factor e^{-tilt λ} live."""
    u, w = roots_genlaguerre(n, shape - 1)
    lam = u / (rate + tilt)
    return lam, w / w.sum() * (rate / (rate + tilt)) ** shape * np.exp(tilt * lam)


def _beta_rule(a: float, b: float, n: int = 80) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights with Σ w f(p) ≈ E[f(p)] for p ~ Beta(a, b) (Gauss-Jacobi)."""
    u, w = roots_jacobi(n, b - 1, a - 1)
    return (1 + u) / 2, w / w.sum()


def _mix_bg(f, params: tuple[float, float, float, float], T: float) -> float:  # type: ignore[no-untyped-def]
    """E over λ ~ Gamma(r, α), p ~ Beta(a, b) of f(λ, p), by quadrature (not by the model's formulas)."""
    r, alpha, a, b = params
    lam, wl = _gamma_rule(r, alpha, T)
    p, wp = _beta_rule(a, b)
    L, P = np.meshgrid(lam, p, indexing="ij")
    return float(np.sum(np.outer(wl, wp) * f(L, P)))


BG_PARAMS = [(1.3, 2.0, 1.6, 2.5), (0.243, 4.414, 0.793, 2.426)]
BG_CASES = [(0, 0.0, 3.0), (1, 1.5, 3.0), (3, 2.0, 4.0), (2, 4.0, 4.0), (7, 30.0, 38.0)]


@pytest.mark.parametrize("params", BG_PARAMS, ids=["smooth", "cdnow"])
@pytest.mark.parametrize(("x", "t_x", "T"), BG_CASES)
def test_bg_nbd_likelihood_equals_the_mixture_integral(params: tuple[float, float, float, float], x: int,
                                                       t_x: float, T: float) -> None:
    want = _mix_bg(lambda lam, p: _bg_individual(lam, p, x, t_x, T), params, T)
    got = bgnbd.log_likelihood(params, np.array([float(x)]), np.array([t_x]), np.array([T]))[0]
    assert got == pytest.approx(math.log(want), abs=1e-8)


@pytest.mark.parametrize("params", BG_PARAMS, ids=["smooth", "cdnow"])
@pytest.mark.parametrize(("x", "t_x", "T", "t"), [(0, 0.0, 3.0, 5.0), (3, 2.0, 4.0, 2.0), (2, 4.0, 4.0, 10.0),
                                                  (7, 30.0, 38.0, 52.0)])
def test_bg_nbd_expectation_and_p_alive_equal_the_posterior_integrals(
        params: tuple[float, float, float, float], x: int, t_x: float, T: float, t: float) -> None:
    """Alive with (λ, p) a customer makes (1 − e^{−λpt})/p purchases in the next t on average (FHL 2005)."""
    m = BgNbd(*params)
    evidence = _mix_bg(lambda lam, p: _bg_individual(lam, p, x, t_x, T), params, T)
    alive = _mix_bg(lambda lam, p: (1 - p) ** x * lam**x * np.exp(-lam * T), params, T)
    future = _mix_bg(lambda lam, p: (1 - p) ** x * lam**x * np.exp(-lam * T) * -np.expm1(-lam * p * t) / p,
                     params, T)
    X, TX, TT = np.array([float(x)]), np.array([t_x]), np.array([T])
    assert bgnbd.p_alive(m, X, TX, TT)[0] == pytest.approx(alive / evidence, rel=1e-8)
    assert bgnbd.expected_purchases(m, X, TX, TT, t)[0] == pytest.approx(future / evidence, rel=1e-6)


def test_bg_nbd_p_alive_is_one_without_repeat_purchases() -> None:
    """BG/NBD customers can only drop out right after a purchase (FHL 2005)."""
    m = BgNbd(0.243, 4.414, 0.793, 2.426)
    pa = bgnbd.p_alive(m, np.zeros(3), np.zeros(3), np.array([1.0, 20.0, 39.0]))
    assert np.all(pa == 1.0)
    assert bgnbd.p_alive(m, np.array([2.0]), np.array([1.0]), np.array([39.0]))[0] < 0.5


def _pn_individual(lam: np.ndarray, mu: np.ndarray, x: int, t_x: float, T: float) -> np.ndarray:
    # alive at T, or died at some τ in (t_x, T]
    alive = lam**x * np.exp(-(lam + mu) * T)
    died = lam**x * mu / (lam + mu) * (np.exp(-(lam + mu) * t_x) - np.exp(-(lam + mu) * T))
    return alive + died


def _mix_pn(f, params: tuple[float, float, float, float], T: float) -> float:  # type: ignore[no-untyped-def]
    """E over λ ~ Gamma(r, α), μ ~ Gamma(s, β) of f(λ, μ), by quadrature."""
    r, alpha, s, beta = params
    lam, wl = _gamma_rule(r, alpha, T)
    mu, wm = _gamma_rule(s, beta, T)
    L, M = np.meshgrid(lam, mu, indexing="ij")
    return float(np.sum(np.outer(wl, wm) * f(L, M)))


PN_PARAMS = [(1.3, 2.0, 1.5, 3.0), (1.4, 3.5, 1.2, 1.5), (0.553, 10.578, 0.606, 11.669), (0.5, 12.0, 0.7, 2.0)]
PN_IDS = ["alpha<beta", "alpha>beta", "cdnow", "alpha>>beta"]


@pytest.mark.parametrize("params", PN_PARAMS, ids=PN_IDS)
@pytest.mark.parametrize(("x", "t_x", "T"), BG_CASES)
def test_pareto_nbd_likelihood_equals_the_mixture_integral(params: tuple[float, float, float, float], x: int,
                                                           t_x: float, T: float) -> None:
    """Both hypergeometric branches (α < β and α ≥ β) against direct integration over λ and μ."""
    want = _mix_pn(lambda lam, mu: _pn_individual(lam, mu, x, t_x, T), params, T)
    got = paretonbd.log_likelihood(params, np.array([float(x)]), np.array([t_x]), np.array([T]))[0]
    assert got == pytest.approx(math.log(want), abs=1e-8)


@pytest.mark.parametrize("params", PN_PARAMS, ids=PN_IDS)
@pytest.mark.parametrize(("x", "t_x", "T", "t"), [(0, 0.0, 3.0, 5.0), (3, 2.0, 4.0, 2.0), (7, 30.0, 38.0, 52.0)])
def test_pareto_nbd_expectation_and_p_alive_equal_the_posterior_integrals(
        params: tuple[float, float, float, float], x: int, t_x: float, T: float, t: float) -> None:
    """Alive with (λ, μ) a customer makes λ/μ (1 − e^{−μt}) purchases in the next t on average."""
    m = ParetoNbd(*params)
    evidence = _mix_pn(lambda lam, mu: _pn_individual(lam, mu, x, t_x, T), params, T)
    alive = _mix_pn(lambda lam, mu: lam**x * np.exp(-(lam + mu) * T), params, T)
    future = _mix_pn(lambda lam, mu: lam**x * np.exp(-(lam + mu) * T) * lam * -np.expm1(-mu * t) / mu, params, T)
    X, TX, TT = np.array([float(x)]), np.array([t_x]), np.array([T])
    assert paretonbd.p_alive(m, X, TX, TT)[0] == pytest.approx(alive / evidence, rel=1e-8)
    assert paretonbd.expected_purchases(m, X, TX, TT, t)[0] == pytest.approx(future / evidence, rel=1e-6)


def test_pareto_nbd_p_alive_without_repeat_purchases_is_below_one_and_falls_with_age() -> None:
    """Unlike the BG/NBD, a Pareto/NBD customer can die before any repeat purchase, so P(alive | x = 0)
    < 1 and it decreases as the silence gets longer."""
    m = ParetoNbd(0.553, 10.578, 0.606, 11.669)
    pa = paretonbd.p_alive(m, np.zeros(3), np.zeros(3), np.array([1.0, 20.0, 39.0]))
    assert np.all(pa < 1.0) and np.all(pa > 0.0)
    assert pa[0] > pa[1] > pa[2]


def test_pareto_nbd_expectation_is_continuous_at_s_equal_one() -> None:
    X, TX, TT = np.array([2.0]), np.array([10.0]), np.array([30.0])
    vals = [paretonbd.expected_purchases(ParetoNbd(0.5, 10.0, s, 12.0), X, TX, TT, 52.0)[0]
            for s in (1 - 1e-6, 1.0, 1 + 1e-6)]
    assert vals[0] == pytest.approx(vals[1], rel=1e-5) and vals[2] == pytest.approx(vals[1], rel=1e-5)


@pytest.mark.parametrize("model", ["bg", "pn"])
def test_expected_purchases_grow_with_the_horizon(model: str) -> None:
    x = np.array([0.0, 1.0, 5.0, 20.0])
    t_x = np.array([0.0, 3.0, 20.0, 38.0])
    T = np.array([39.0, 39.0, 39.0, 39.0])
    horizons = np.array([[0.0, 1.0, 4.0, 13.0, 39.0, 52.0, 104.0, 520.0]])
    col = (slice(None), None)
    if model == "bg":
        e = bgnbd.expected_purchases(BgNbd(0.243, 4.414, 0.793, 2.426), x[col], t_x[col], T[col], horizons)
    else:
        e = paretonbd.expected_purchases(ParetoNbd(0.553, 10.578, 0.606, 11.669), x[col], t_x[col], T[col],
                                         horizons)
    assert e.shape == (4, 8)
    assert np.all(e[:, 0] == 0.0)
    assert np.all(np.diff(e, axis=1) > 0)
    # more past purchases, recent ones: more future purchases
    assert np.all(np.diff(e[:, -1]) > 0)


@pytest.mark.parametrize("params", [(0.243, 4.414, 0.793, 2.426), (0.5, 0.1, 0.3, 0.2), (2.0, 50.0, 3.0, 0.5)])
def test_bg_nbd_expectation_stays_finite_for_heavy_buyers_and_long_horizons(
        params: tuple[float, float, float, float]) -> None:
    """Daily buyers over a ten-year horizon overflow ₂F₁; the fallback must still give a finite value that
    grows with the horizon and stays below the no-dropout bound E[λ | data] · t = (r+x)/(α+T) · t."""
    m = BgNbd(*params)
    x = np.array([[30.0], [100.0], [270.0]])
    t_x = np.array([[20.0], [38.0], [38.9]])
    T = np.array([[39.0], [39.0], [39.0]])
    t = np.array([[1.0, 52.0, 520.0, 5200.0]])
    e = bgnbd.expected_purchases(m, x, t_x, T, t)
    assert np.all(np.isfinite(e)) and np.all(e > 0)
    assert np.all(np.diff(e, axis=1) > 0)
    assert np.all(e <= (m.r + x) / (m.alpha + T) * t)


def test_bg_nbd_quadrature_fallback_matches_the_closed_form() -> None:
    m = BgNbd(0.243, 4.414, 0.793, 2.426)
    for x, T, t in ((1.0, 39.0, 52.0), (5.0, 20.0, 10.0), (12.0, 39.0, 104.0)):
        alive = bgnbd.p_alive(m, np.array([x]), np.array([T / 2]), np.array([T]))[0]
        closed = bgnbd.expected_purchases(m, np.array([x]), np.array([T / 2]), np.array([T]), t)[0]
        assert bgnbd._alive_expectation_by_quadrature(m, x, T, t) * alive == pytest.approx(closed, rel=1e-9)


@pytest.mark.parametrize("params", [(0.553, 10.578, 0.606, 11.669), (0.5, 0.01, 0.6, 100.0),
                                    (0.5, 100.0, 0.6, 0.01)], ids=["cdnow", "alpha<<beta", "alpha>>beta"])
def test_pareto_nbd_stays_finite_for_heavy_buyers(params: tuple[float, float, float, float]) -> None:
    """x in the thousands makes the raw ₂F₁ overflow; the likelihood and P(alive) must stay finite, and a
    heavy buyer who bought just now is almost surely alive."""
    x = np.array([0.0, 30.0, 300.0, 3000.0])
    t_x = np.array([0.0, 20.0, 38.9, 38.99])
    T = np.full(4, 39.0)
    assert np.all(np.isfinite(paretonbd.log_likelihood(params, x, t_x, T)))
    pa = paretonbd.p_alive(ParetoNbd(*params), x, t_x, T)
    assert np.all((pa >= 0) & (pa <= 1)) and pa[3] > 0.99


def test_gamma_gamma_density_equals_the_mixture_integral() -> None:
    """x = 1: the spend m is Gamma(p, ν) with ν ~ Gamma(q, v); x = 2: the mean of two Gamma(p, ν) is
    Gamma(2p, 2ν)."""
    p, q, v = 2.5, 3.0, 20.0
    for x, m in ((1, 12.0), (2, 7.5), (4, 30.0)):
        want, _ = integrate.quad(
            lambda nu, x=x, m=m: stats.gamma.pdf(m, p * x, scale=1 / (x * nu)) * stats.gamma.pdf(nu, q, scale=1 / v),
            0, np.inf, epsabs=1e-14, epsrel=1e-11)
        got = gammagamma.log_likelihood((p, q, v), np.array([float(x)]), np.array([m]))[0]
        assert got == pytest.approx(math.log(want), abs=1e-7)


def test_gamma_gamma_expected_spend_by_hand() -> None:
    """E[M | x, m] = p (v + x m) / (p x + q − 1); for x = 0 the population mean p v / (q − 1)."""
    g = GammaGamma(2.0, 3.0, 10.0)
    got = gammagamma.expected_spend(g, np.array([0.0, 1.0, 4.0]), np.array([0.0, 40.0, 5.0]))
    assert got == pytest.approx([2 * 10 / 2, 2 * (10 + 40) / 4, 2 * (10 + 20) / 10])
    with pytest.raises(TaktError, match=r"q = 0\.9"):
        gammagamma.expected_spend(GammaGamma(2.0, 0.9, 10.0), np.array([1.0]), np.array([3.0]))


# ---------------------------------------------------------------- CLV
def test_lifetime_value_without_discount_is_purchases_times_spend(cdnow: ClvFit) -> None:
    c = cdnow.customers
    np.testing.assert_allclose(c["clv"], c["expected_purchases"] * c["expected_spend"], rtol=1e-12)
    np.testing.assert_allclose(c["pareto_nbd_clv"], c["pareto_nbd_expected_purchases"] * c["expected_spend"],
                               rtol=1e-12)
    assert list(c["clv"]) == sorted(c["clv"], reverse=True)


def test_lifetime_value_discounting_by_hand() -> None:
    """Two yearly steps with E(t) = 3t purchases and spend 10 at 10 % a year: 30/1.1 + 30/1.21."""
    def cumulative(t: np.ndarray) -> np.ndarray:
        return np.repeat(3.0 * t, 2, axis=0)

    got = lifetime_value(cumulative, np.array([10.0, 20.0]), 2.0, 365.25, 0.10)
    assert got == pytest.approx([30 / 1.1 + 30 / 1.21, 60 / 1.1 + 60 / 1.21])
    half = lifetime_value(cumulative, np.array([10.0, 10.0]), 1.5, 365.25, 0.10)
    assert half[0] == pytest.approx(30 / 1.1 + 15 / 1.1**1.5)
    assert list(horizon_grid(2.5)) == [1.0, 2.0, 2.5]


def test_discounted_clv_is_lower(cdnow_frame: pd.DataFrame, cdnow: ClvFit) -> None:
    disc = fit_transactions(cdnow_frame, customer_col="2", date_col="3", amount_col="5",
                            calibration_end=CAL_END, horizon_weeks=39, discount_rate=0.15)
    a = cdnow.customers.set_index("customer_id")["clv"]
    b = disc.customers.set_index("customer_id")["clv"].loc[a.index]
    assert np.all(b < a)
    # 39 weeks at 15 % a year: factors between 1.15^-(1/52) and 1.15^-0.75
    assert np.all(b >= a * 1.15 ** -0.75) and np.all(b <= a * 1.15 ** (-1 / 52.1775))


# ---------------------------------------------------------------- data preparation
def _orders(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["customer", "day", "amount"])


def test_summary_collapses_days_and_counts_repeat_purchases_only() -> None:
    df = _orders([
        ("a", "2024-01-01", 10.0), ("a", "2024-01-01", 5.0),  # one day: one transaction of 15
        ("a", "2024-01-15", 20.0), ("a", "2024-01-29", 40.0),
        ("b", "2024-01-08", 7.0),
        ("a", "2024-02-05", 99.0), ("a", "2024-02-06", 1.0), ("b", "2024-02-10", 3.0),  # after the end
        ("c", "2024-03-01", 9.0),  # first purchase after the end: not a calibration customer
    ])
    s = summarize(df, customer_col="customer", date_col="day", amount_col="amount",
                  calibration_end=date(2024, 1, 29))
    assert list(s.customer_id) == ["a", "b"]
    assert list(s.frequency) == [2, 0]
    assert list(s.recency) == pytest.approx([4.0, 0.0])
    assert list(s.age) == pytest.approx([4.0, 3.0])
    assert list(s.monetary_value) == pytest.approx([30.0, 0.0])
    assert list(s.holdout_purchases) == [2, 1]


@pytest.mark.parametrize("values", [
    ["2024-01-31", "2024-02-01"],
    ["2024-01-31T23:10:00Z", "2024-02-01T00:00:00+00:00"],
    [20240131, 20240201],
    ["20240131", "20240201"],
    ["31.01.2024", "01.02.2024"],
    ["01/31/2024", "02/01/2024"],
    ["31/01/2024", "01/02/2024"],
    [datetime(2024, 1, 31, 15), datetime(2024, 2, 1, 9)],
    [date(2024, 1, 31), date(2024, 2, 1)],
])
def test_dates_in_common_formats(values: list[object]) -> None:
    got = parse_dates(pd.Series(values), "d")
    assert [d.date() for d in got] == [date(2024, 1, 31), date(2024, 2, 1)]


def test_time_zone_aware_dates_become_utc_days() -> None:
    s = pd.Series(pd.to_datetime(["2024-01-31T23:30:00-05:00"]))
    assert parse_dates(s, "d").iloc[0].date() == date(2024, 2, 1)


def test_explicit_date_format_resolves_ambiguity() -> None:
    got = parse_dates(pd.Series(["01/02/2024"]), "d", "%d/%m/%Y")
    assert got.iloc[0].date() == date(2024, 2, 1)


@pytest.mark.parametrize(("frame", "kwargs", "message"), [
    (_orders([("a", "2024-01-01", 1.0)]), {"amount_col": "revenue"}, "missing column 'revenue'"),
    (_orders([("a", "2024-01-01", 1.0), ("a", "yesterday", 2.0)]), {}, "cannot parse 'yesterday'"),
    (_orders([("a", "2024-01-01", 1.0), ("b", "2024-01-02", -4.0)]), {}, "negative amount"),
    (_orders([("a", "2024-01-01", 1.0)]).astype({"amount": str}).replace({"1.0": "ten"}), {}, "'ten'"),
    (_orders([("a", "2024-06-01", 1.0)]), {}, "calibration period is empty"),
    (_orders([("", "2024-01-01", 1.0)]), {}, "customer column 'customer' has an empty value"),
    (_orders([("a", "", 1.0)]), {}, "date column 'day' has an empty value"),
    (_orders([("a", "2024-01-01", 1.0)]), {"time_unit": "fortnights"}, "unknown time unit"),
])
def test_bad_transactions_are_named(frame: pd.DataFrame, kwargs: dict[str, str], message: str) -> None:
    args = {"customer_col": "customer", "date_col": "day", "amount_col": "amount",
            "calibration_end": date(2024, 3, 1), **kwargs}
    with pytest.raises(TaktError, match=message):
        summarize(frame, **args)  # type: ignore[arg-type]


def test_no_repeat_purchases_cannot_be_fitted() -> None:
    df = _orders([("a", "2024-01-01", 1.0), ("b", "2024-01-02", 2.0)])
    s = summarize(df, customer_col="customer", date_col="day", amount_col="amount",
                  calibration_end=date(2024, 3, 1))
    with pytest.raises(TaktError, match="no customer made a repeat purchase"):
        fit_summary(s)


def test_customers_first_seen_on_the_calibration_end_day() -> None:
    """T = 0 (first purchase on the last day) and t_x = T (last purchase on the last day) are legal edge
    cases: no information, or no time since the last purchase; predictions stay finite."""
    rows = [("a", "2024-01-01", 5.0), ("a", "2024-01-20", 7.0), ("a", "2024-03-01", 9.0),
            ("b", "2024-01-03", 4.0), ("b", "2024-02-01", 4.0),
            ("c", "2024-02-10", 8.0), ("d", "2024-03-01", 6.0), ("e", "2024-01-15", 3.0)]
    fit = fit_transactions(_orders(rows), customer_col="customer", date_col="day", amount_col="amount",
                           calibration_end=date(2024, 3, 1), horizon_weeks=8)
    c = fit.customers.set_index("customer_id")
    assert c.loc["d", "T"] == 0 and c.loc["a", "recency"] == c.loc["a", "T"]
    assert np.all(np.isfinite(c.select_dtypes("number").to_numpy()))
    assert c.loc["d", "p_alive"] == 1.0 and c.loc["d", "pareto_nbd_p_alive"] == pytest.approx(1.0)


def test_regular_buyers_give_finite_predictions() -> None:
    """Everyone buying every week (no heterogeneity, no dropout) drives parameters to extremes; the
    predictions must stay finite (about one purchase a week)."""
    rows = [(f"c{c}", (date(2024, 1, 1) + timedelta(days=7 * k + c % 3)).isoformat(), 10.0 + c % 4 + k % 2)
            for c in range(30) for k in range(20)]
    fit = fit_transactions(_orders(rows), customer_col="customer", date_col="day", amount_col="amount",
                           calibration_end=date(2024, 3, 31), horizon_weeks=10)
    c = fit.customers
    assert np.all(np.isfinite(c[["expected_purchases", "pareto_nbd_expected_purchases", "clv"]].to_numpy()))
    assert c["expected_purchases"].between(9, 11).all()
    assert c["pareto_nbd_expected_purchases"].between(9, 11).all()


# ---------------------------------------------------------------- CLI
CDNOW_ARGS = [str(CDNOW), "--no-header", "--customer-col", "2", "--date-col", "3", "--amount-col", "5",
              "--calibration-end", "1997-09-30"]


def test_cli_text_report_on_cdnow(tmp_path: Path) -> None:
    out = tmp_path / "clv.csv"
    res = CliRunner().invoke(main, ["clv", "fit", *CDNOW_ARGS, "--top", "3", "--output", str(out)])
    assert res.exit_code == 0, res.output
    bg = re.search(r"BG/NBD +r=([\d.]+) +alpha=([\d.]+) +a=([\d.]+) +b=([\d.]+) +log-likelihood (-[\d.]+)",
                   res.output)
    assert bg is not None, res.output
    for got, published in zip(bg.groups(), ("0.243", "4.414", "0.793", "2.426", "-9582.4"), strict=True):
        assert _rel(float(got), float(published)) < 0.01
    gg = re.search(r"Gamma-Gamma +p=([\d.]+) +q=([\d.]+) +v=([\d.]+)", res.output)
    assert gg is not None and [round(float(v), 2) for v in gg.groups()] == [6.25, 3.74, 15.44]
    table = res.output.split("Top 3 customers")[1].strip().splitlines()
    assert len(table) == 1 + 1 + 3 + 1  # rest of the title line, column header, three customers, "wrote"
    assert table[-1] == f"wrote 2357 customers to {out}"
    written = pd.read_csv(out, dtype={"customer_id": str})
    assert len(written) == 2357 and written["customer_id"].iloc[0] == table[2].split()[0]


def test_cli_json_shape(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["clv", "fit", *CDNOW_ARGS, "--json", "--horizon-weeks", "26"])
    assert res.exit_code == 0, res.output
    body = json.loads(res.output)
    assert set(body["bg_nbd"]) == {"r", "alpha", "a", "b", "log_likelihood"}
    assert set(body["pareto_nbd"]) == {"r", "alpha", "s", "beta", "log_likelihood"}
    assert {"p", "q", "v"} <= set(body["gamma_gamma"])
    assert body["bg_nbd"]["r"] == pytest.approx(0.243, rel=0.01)
    assert body["horizon_weeks"] == 26 and body["warnings"] == []
    assert len(body["customers"]) == 2357
    first = body["customers"][0]
    assert {"customer_id", "expected_purchases", "p_alive", "clv", "pareto_nbd_p_alive"} <= set(first)
    assert isinstance(first["customer_id"], str) and len(first["customer_id"]) == 4  # leading zeros kept


def _cdnow_subset_csv(tmp_path: Path) -> Path:
    """The first 400 CDNOW customers as a CSV with a header and ISO dates."""
    df = read_transactions(CDNOW, header=False)
    df = df[df["2"].astype(int) <= 400]
    out = pd.DataFrame({"user": "u" + df["2"], "ordered_at": pd.to_datetime(df["3"], format="%Y%m%d").dt.strftime(
        "%Y-%m-%d"), "revenue": df["5"]})
    path = tmp_path / "orders.csv"
    out.to_csv(path, index=False)
    return path


def test_cli_csv_and_parquet_agree(tmp_path: Path) -> None:
    csv = _cdnow_subset_csv(tmp_path)
    pq = tmp_path / "orders.parquet"
    frame = pd.read_csv(csv)
    frame["ordered_at"] = pd.to_datetime(frame["ordered_at"])
    frame.to_parquet(pq)
    common = ["--customer-col", "user", "--date-col", "ordered_at", "--amount-col", "revenue",
              "--calibration-end", "1997-09-30", "--json"]
    a = CliRunner().invoke(main, ["clv", "fit", str(csv), *common])
    b = CliRunner().invoke(main, ["clv", "fit", str(pq), *common])
    assert a.exit_code == 0, a.output
    assert b.exit_code == 0, b.output
    ja, jb = json.loads(a.output), json.loads(b.output)
    assert ja["n_customers"] == jb["n_customers"] == 400
    assert ja["bg_nbd"]["r"] == pytest.approx(jb["bg_nbd"]["r"], rel=1e-6)


@pytest.mark.parametrize(("args", "message"), [
    ([], "needs a transaction FILE"),
    (["orders.csv"], "missing options: --customer-col, --date-col, --amount-col, --calibration-end"),
    (["missing.csv", "--customer-col", "user", "--date-col", "ordered_at", "--amount-col", "revenue",
      "--calibration-end", "1997-09-30"], "does not exist"),
    (["orders.csv", "--customer-col", "customer", "--date-col", "ordered_at", "--amount-col", "revenue",
      "--calibration-end", "1997-09-30"], "missing column 'customer'"),
    (["orders.csv", "--customer-col", "user", "--date-col", "revenue", "--amount-col", "revenue",
      "--calibration-end", "1997-09-30"], "date column 'revenue': cannot parse"),
    (["orders.csv", "--customer-col", "user", "--date-col", "ordered_at", "--amount-col", "revenue",
      "--calibration-end", "30.09.1997"], "--calibration-end: cannot parse"),
    (["orders.csv", "--customer-col", "user", "--date-col", "ordered_at", "--amount-col", "revenue",
      "--calibration-end", "1996-12-31"], "calibration period is empty"),
    (["orders.csv", "--customer-col", "user", "--date-col", "ordered_at", "--amount-col", "revenue",
      "--calibration-end", "1997-09-30", "--horizon-weeks", "0"], "horizon must be a positive"),
])
def test_cli_errors_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str],
                                 message: str) -> None:
    _cdnow_subset_csv(tmp_path)
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["clv", "fit", *args])
    assert res.exit_code == 2
    assert message in res.output
    assert "Traceback" not in res.output


def test_cli_negative_amount(tmp_path: Path) -> None:
    path = tmp_path / "neg.csv"
    path.write_text("user,ordered_at,revenue\nu1,2024-01-01,5\nu1,2024-01-09,-2\n", encoding="utf-8")
    res = CliRunner().invoke(main, ["clv", "fit", str(path), "--customer-col", "user", "--date-col",
                                    "ordered_at", "--amount-col", "revenue", "--calibration-end", "2024-02-01"])
    assert res.exit_code == 2
    assert "amount column 'revenue' has a negative amount (-2) in row 2" in res.output
