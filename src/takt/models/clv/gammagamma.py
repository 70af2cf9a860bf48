"""The Gamma-Gamma model of spend per transaction (Fader, Hardie & Lee 2005, "RFM and CLV: using iso-value
curves for customer base analysis", JMR 42(4); Fader & Hardie 2013, "The Gamma-Gamma model of monetary
value", brucehardie.com/notes/025).

A customer's transaction values are Gamma(p, ν); ν varies across customers as Gamma(q, v). The data per
customer are x repeat transactions and their mean value m; only customers with x > 0 and m > 0 inform the
fit. Spend is assumed independent of the purchase process.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln

from takt.errors import TaktError
from takt.models.clv._optimize import compress, maximize


@dataclass(frozen=True)
class GammaGamma:
    p: float
    q: float
    v: float
    log_likelihood: float = float("nan")
    n_customers: int = 0
    converged: bool = True

    def as_dict(self) -> dict[str, float | int]:
        return {"p": self.p, "q": self.q, "v": self.v, "log_likelihood": self.log_likelihood,
                "n_customers": self.n_customers}


def log_likelihood(params: tuple[float, float, float] | np.ndarray, x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Each customer's log density of the mean m of x transactions::

        f(m | x) = Γ(px+q) / (Γ(px) Γ(q)) · v^q · m^(px-1) · x^(px) / (v + x m)^(px+q)
    """
    p, q, v = (float(val) for val in params)
    x = np.asarray(x, dtype="float64")
    m = np.asarray(m, dtype="float64")
    px = p * x
    return (gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(v) + (px - 1.0) * np.log(m)
            + px * np.log(x) - (px + q) * np.log(v + x * m))


def expected_spend(g: GammaGamma, x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """E[M | x, m] = p (v + x m) / (p x + q - 1): a weighted mean of the population mean p v / (q - 1) and
    the customer's own mean m, with the weight on m growing with x. For x = 0 it is the population mean.
    Needs q > 1 (otherwise the population mean spend is infinite)."""
    if g.q <= 1.0:
        raise TaktError(f"Gamma-Gamma: q = {g.q:.4g} ≤ 1 means an infinite mean spend; too few or too "
                        "dispersed repeat purchases to value customers", code="fit_failed")
    x = np.asarray(x, dtype="float64")
    m = np.where(x > 0, np.asarray(m, dtype="float64"), 0.0)
    return g.p * (g.v + x * m) / (g.p * x + g.q - 1.0)


MIN_CUSTOMERS = 2


def fit(x: np.ndarray, m: np.ndarray) -> GammaGamma:
    """Maximum-likelihood parameters from the customers with x > 0 and m > 0."""
    x = np.asarray(x, dtype="float64")
    m = np.asarray(m, dtype="float64")
    use = (x > 0) & (m > 0)
    n = int(use.sum())
    if n < MIN_CUSTOMERS:
        raise TaktError(f"Gamma-Gamma needs at least {MIN_CUSTOMERS} customers with a repeat purchase of "
                        f"positive value in the calibration period; there are {n}", code="fit_failed")
    xs, ms = x[use], m[use]
    mean = float(np.mean(ms))
    starts = [(1.0, 2.0, mean), (5.0, 4.0, mean)]
    (ux, um), counts = compress(xs, ms)
    est = maximize(lambda prm: float(np.dot(counts, log_likelihood(prm, ux, um))), starts, n, "Gamma-Gamma")
    p, q, v = (float(val) for val in est.params)
    return GammaGamma(p, q, v, est.log_likelihood, n, est.converged)
