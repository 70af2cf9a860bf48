"""The BG/NBD model of repeat buying and dropout (Fader, Hardie & Lee 2005, "Counting your customers the
easy way", Marketing Science 24(2), 275-284).

While alive a customer buys as a Poisson process with rate λ ~ Gamma(r, α); after each purchase they drop
out with probability p ~ Beta(a, b). Per customer the data are x repeat purchases, the time t_x of the last
one and the age T (all in one time unit). Everything is computed in log space.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.integrate import quad
from scipy.special import betaln, expit, gammaln, hyp2f1

from takt.models.clv._optimize import compress, maximize


@dataclass(frozen=True)
class BgNbd:
    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float = float("nan")
    converged: bool = True

    def as_dict(self) -> dict[str, float]:
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b,
                "log_likelihood": self.log_likelihood}


def log_likelihood(params: tuple[float, float, float, float] | np.ndarray, x: np.ndarray, t_x: np.ndarray,
                   T: np.ndarray) -> np.ndarray:
    """Each customer's log-likelihood (FHL 2005, equation 6)::

        L = B(a, b+x)/B(a, b) · Γ(r+x) α^r / (Γ(r) (α+T)^(r+x))
            + [x > 0] · B(a+1, b+x-1)/B(a, b) · Γ(r+x) α^r / (Γ(r) (α+t_x)^(r+x))
    """
    r, alpha, a, b = (float(v) for v in params)
    x = np.asarray(x, dtype="float64")
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) - betaln(a, b)
    alive = betaln(a, b + x) - (r + x) * np.log(alpha + T)
    repeat = x > 0
    dropped = np.full_like(alive, -np.inf)
    xr = x[repeat]
    dropped[repeat] = betaln(a + 1, b + xr - 1) - (r + xr) * np.log(alpha + np.asarray(t_x)[repeat])
    return common + np.logaddexp(alive, dropped)


def _log_odds_dead(m: BgNbd, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """log of ``a/(b+x-1) · ((α+T)/(α+t_x))^(r+x)`` for x > 0, −∞ for x = 0."""
    x = np.asarray(x, dtype="float64")
    out = np.full(x.shape, -np.inf)
    rep = x > 0
    xr = x[rep]
    out[rep] = (np.log(m.a) - np.log(m.b + xr - 1)
                + (m.r + xr) * (np.log(m.alpha + np.asarray(T)[rep]) - np.log(m.alpha + np.asarray(t_x)[rep])))
    return out


def p_alive(m: BgNbd, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """P(alive at T | x, t_x, T) = 1 / (1 + [x > 0] a/(b+x-1) ((α+T)/(α+t_x))^(r+x)) (FHL 2005, eq. 11).

    A customer without repeat purchases is alive for sure: BG/NBD customers can only drop out right after
    a purchase.
    """
    return expit(-_log_odds_dead(m, x, t_x, T))


def _hyp2f1_minus_one(A: np.ndarray, B: float, C: np.ndarray, w: np.ndarray) -> np.ndarray:
    """₂F₁(A, B; C; w) − 1 by its power series, for |w| < 1 (used where scipy's ₂F₁ is not finite, which
    happens for very large A, i.e. nearly homogeneous purchase rates; there w = −t/(α+T) is small)."""
    total = np.zeros_like(w)
    term = np.ones_like(w)
    for n in range(2000):
        term = term * (A + n) * (B + n) / ((C + n) * (n + 1.0)) * w
        total = total + term
        if np.all(np.abs(term) <= 1e-16 * np.maximum(np.abs(total), 1e-300)):
            break
    return total


def _alive_expectation_by_quadrature(m: BgNbd, x: float, T: float, t: float) -> float:
    """E[purchases in (T, T+t] | alive at T] as an integral over the posterior p ~ Beta(a, b+x): a customer
    alive with (λ, p) makes (1 − e^{−λpt})/p purchases on average, and averaging e^{−λpt} over the posterior
    λ ~ Gamma(r+x, α+T) gives (1 + pt/(α+T))^{−(r+x)}. QUADPACK's algebraic weight takes the Beta kernel."""
    k = t / (m.alpha + T)

    def integrand(p: float) -> float:
        return float(-np.expm1(-(m.r + x) * np.log1p(k * p)) / p) if p > 0 else (m.r + x) * k

    value, _ = quad(integrand, 0.0, 1.0, weight="alg", wvar=(m.a - 1.0, m.b + x - 1.0), limit=200)
    return float(value / np.exp(betaln(m.a, m.b + x)))


def expected_purchases(m: BgNbd, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, t: float | np.ndarray) -> np.ndarray:
    """E[Y(t) | x, t_x, T]: expected purchases in (T, T+t] (FHL 2005, equation 10)::

        (a+b+x-1)/(a-1) · [1 - ((α+T)/(α+T+t))^(r+x) ₂F₁(r+x, b+x; a+b+x-1; t/(α+T+t))] · P(alive)

    evaluated in the equivalent form (Pfaff's transformation cancels the power)::

        (a+b+x-1)/(a-1) · [1 - ₂F₁(r+x, a-1; a+b+x-1; -t/(α+T))] · P(alive)

    ``t`` may be a scalar or broadcast against the customers (e.g. shape ``(n, k)`` against ``(n, 1)``).
    """
    x = np.asarray(x, dtype="float64")
    T = np.asarray(T, dtype="float64")
    t = np.asarray(t, dtype="float64")
    if np.any(t < 0):
        raise ValueError("the horizon must not be negative")
    a = m.a if abs(m.a - 1.0) > 1e-7 else 1.0 + 1e-7  # the expression has a removable singularity at a = 1
    shape = np.broadcast_shapes(x.shape, t.shape)
    xs, Ts, ts = (np.broadcast_to(v, shape) for v in (x, T, t))
    A = m.r + xs
    C = a + m.b + xs - 1.0
    w = -ts / (m.alpha + Ts)
    excess = np.array(hyp2f1(A, a - 1.0, C, w) - 1.0, dtype="float64")
    bad = ~np.isfinite(excess) & (np.abs(w) < 1.0)
    if np.any(bad):
        excess[bad] = _hyp2f1_minus_one(A[bad], a - 1.0, C[bad], w[bad])
    first = -C / (a - 1.0) * excess
    bad = ~np.isfinite(first)
    if np.any(bad):  # large x with a horizon much longer than α + T
        first[bad] = [_alive_expectation_by_quadrature(m, xi, Ti, ti)
                      for xi, Ti, ti in zip(xs[bad], Ts[bad], ts[bad], strict=True)]
    pa = np.broadcast_to(p_alive(m, x, np.asarray(t_x, dtype="float64"), T), shape)
    return np.where(ts == 0, 0.0, first * pa)


def fit(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> BgNbd:
    """Maximum-likelihood BG/NBD parameters."""
    x = np.asarray(x, dtype="float64")
    t_x = np.asarray(t_x, dtype="float64")
    T = np.asarray(T, dtype="float64")
    scale = max(float(np.mean(T)), 1e-3)
    starts = [(1.0, scale, 1.0, 1.0), (0.5, scale / 4, 0.5, 2.0)]
    (ux, ut, uT), counts = compress(x, t_x, T)
    est = maximize(lambda p: float(np.dot(counts, log_likelihood(p, ux, ut, uT))), starts, len(x), "BG/NBD")
    r, alpha, a, b = (float(v) for v in est.params)
    return BgNbd(r, alpha, a, b, est.log_likelihood, est.converged)
