"""The Pareto/NBD model (Schmittlein, Morrison & Colombo 1987), in the form of Fader & Hardie's note
"A note on deriving the Pareto/NBD model and related expressions" (2005, brucehardie.com/notes/009).

While alive a customer buys as a Poisson process with rate λ ~ Gamma(r, α); their lifetime is exponential
with rate μ ~ Gamma(s, β). Per customer: x repeat purchases, last at t_x, age T.

The likelihood needs ``A0``, a difference of two Gauss hypergeometric terms; the branch is chosen so that
the argument z lies in [0, 1), each ₂F₁ goes through Euler's transformation so that its large factor
(1 − z)^(1−b) is taken in log space (heavy buyers would overflow otherwise), and the difference is taken in
log space with ``log(1 - e^d)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit, gammaln, hyp2f1

from takt.models.clv._optimize import compress, maximize


@dataclass(frozen=True)
class ParetoNbd:
    r: float
    alpha: float
    s: float
    beta: float
    log_likelihood: float = float("nan")
    converged: bool = True

    def as_dict(self) -> dict[str, float]:
        return {"r": self.r, "alpha": self.alpha, "s": self.s, "beta": self.beta,
                "log_likelihood": self.log_likelihood}


def _log1mexp(d: np.ndarray) -> np.ndarray:
    """log(1 - e^d) for d ≤ 0 (−∞ at d = 0), accurate on the whole range (Mächler 2012)."""
    d = np.minimum(d, 0.0)
    out = np.full(d.shape, -np.inf)
    near = (d > -np.log(2.0)) & (d < 0)
    far = d <= -np.log(2.0)
    out[near] = np.log(-np.expm1(d[near]))
    out[far] = np.log1p(-np.exp(d[far]))
    return out


def _log_term(c: np.ndarray, second: np.ndarray, w: float, low: float, diff: float, t: np.ndarray) -> np.ndarray:
    """log[₂F₁(c, second; c+1; z) / (w+t)^c] with z = diff/(w+t), by Euler's transformation
    ₂F₁(c, b; c+1; z) = (1−z)^(1−b) ₂F₁(1, c+1−b; c+1; z), whose ₂F₁ stays moderate as z → 1 while the
    power is taken in log space; 1 − z = (low+t)/(w+t) exactly."""
    log_one_minus_z = np.log(low + t) - np.log(w + t)
    return ((1.0 - second) * log_one_minus_z + np.log(hyp2f1(1.0, c + 1.0 - second, c + 1.0, diff / (w + t)))
            - c * np.log(w + t))


def _log_a0(r: float, alpha: float, s: float, beta: float, x: np.ndarray, t_x: np.ndarray,
            T: np.ndarray) -> np.ndarray:
    """log A0 where, with c = r+s+x, for α ≥ β::

        A0 = ₂F₁(c, s+1; c+1; (α-β)/(α+t_x)) / (α+t_x)^c - ₂F₁(c, s+1; c+1; (α-β)/(α+T)) / (α+T)^c

    and for α < β the same with (α, s+1) replaced by (β, r+x). A0 = 0 (log −∞) when t_x = T.
    """
    c = r + s + x
    if alpha >= beta:
        w, low, second = alpha, beta, s + 1.0 + np.zeros_like(x)
    else:
        w, low, second = beta, alpha, r + x
    diff = w - low
    log_first = _log_term(c, second, w, low, diff, t_x)
    log_last = _log_term(c, second, w, low, diff, T)
    return log_first + _log1mexp(log_last - log_first)


def _parts(params: tuple[float, float, float, float] | np.ndarray, x: np.ndarray, t_x: np.ndarray,
           T: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(log common factor, log 'still alive at T' term, log 'died in (t_x, T]' term)."""
    r, alpha, s, beta = (float(v) for v in params)
    x = np.asarray(x, dtype="float64")
    t_x = np.asarray(t_x, dtype="float64")
    T = np.asarray(T, dtype="float64")
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
    alive = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
    died = np.log(s) - np.log(r + s + x) + _log_a0(r, alpha, s, beta, x, t_x, T)
    return common, alive, died


def log_likelihood(params: tuple[float, float, float, float] | np.ndarray, x: np.ndarray, t_x: np.ndarray,
                   T: np.ndarray) -> np.ndarray:
    """Each customer's log-likelihood::

        L = Γ(r+x) α^r β^s / Γ(r) · [ 1/((α+T)^(r+x) (β+T)^s) + s/(r+s+x) · A0 ]
    """
    common, alive, died = _parts(params, x, t_x, T)
    return common + np.logaddexp(alive, died)


def p_alive(m: ParetoNbd, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """P(alive at T | x, t_x, T) = 1 / (1 + s/(r+s+x) (α+T)^(r+x) (β+T)^s A0).

    Unlike BG/NBD this is below 1 even without repeat purchases: a Pareto/NBD customer can die at any time.
    """
    _, alive, died = _parts((m.r, m.alpha, m.s, m.beta), x, t_x, T)
    return expit(alive - died)


def expected_purchases(m: ParetoNbd, x: np.ndarray, t_x: np.ndarray, T: np.ndarray,
                       t: float | np.ndarray) -> np.ndarray:
    """E[Y(t) | x, t_x, T]: expected purchases in (T, T+t]::

        (r+x)(β+T) / ((α+T)(s-1)) · [1 - ((β+T)/(β+T+t))^(s-1)] · P(alive)

    computed as (r+x)(β+T)/(α+T) · (1 - e^{-(s-1)L})/(s-1) · P(alive) with L = ln((β+T+t)/(β+T)), whose
    limit at s = 1 is (r+x)(β+T)/(α+T) · L.
    """
    x = np.asarray(x, dtype="float64")
    t_x = np.asarray(t_x, dtype="float64")
    T = np.asarray(T, dtype="float64")
    t = np.asarray(t, dtype="float64")
    if np.any(t < 0):
        raise ValueError("the horizon must not be negative")
    shape = np.broadcast_shapes(x.shape, t.shape)
    xs, Ts, ts = (np.broadcast_to(v, shape) for v in (x, T, t))
    L = np.log1p(ts / (m.beta + Ts))
    k = m.s - 1.0
    growth = L if abs(k) < 1e-10 else -np.expm1(-k * L) / k
    rate = (m.r + xs) * (m.beta + Ts) / (m.alpha + Ts)
    pa = np.broadcast_to(p_alive(m, x, t_x, T), shape)
    return rate * growth * pa


def fit(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> ParetoNbd:
    """Maximum-likelihood Pareto/NBD parameters."""
    x = np.asarray(x, dtype="float64")
    t_x = np.asarray(t_x, dtype="float64")
    T = np.asarray(T, dtype="float64")
    scale = max(float(np.mean(T)), 1e-3)
    starts = [(1.0, scale, 1.0, scale), (0.5, scale / 4, 0.5, scale / 2)]
    (ux, ut, uT), counts = compress(x, t_x, T)
    est = maximize(lambda p: float(np.dot(counts, log_likelihood(p, ux, ut, uT))), starts, len(x), "Pareto/NBD")
    r, alpha, s, beta = (float(v) for v in est.params)
    return ParetoNbd(r, alpha, s, beta, est.log_likelihood, est.converged)
