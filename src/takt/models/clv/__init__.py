"""Customer lifetime value: BG/NBD and Pareto/NBD for purchase frequency and dropout, Gamma-Gamma for spend.

:func:`fit_transactions` takes a DataFrame of transactions (or :func:`fit_summary` a prepared
:class:`~takt.models.transactions.RfmSummary`), fits the three models by maximum likelihood and values every
customer over a horizon. See ``docs/clv.md``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from takt.errors import TaktError

if TYPE_CHECKING:  # numpy, pandas and scipy load when a model is fitted, not when clv("…") is registered
    import numpy as np
    import pandas as pd

    from takt.models.clv.bgnbd import BgNbd
    from takt.models.clv.gammagamma import GammaGamma
    from takt.models.clv.paretonbd import ParetoNbd
    from takt.models.transactions import RfmSummary

_LAZY = {"BgNbd": "bgnbd", "GammaGamma": "gammagamma", "ParetoNbd": "paretonbd"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"takt.models.clv.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["BgNbd", "ClvFit", "GammaGamma", "ParetoNbd", "fit_summary", "fit_transactions"]

CUSTOMER_COLUMNS = (
    "customer_id", "frequency", "recency", "T", "monetary_value", "holdout_purchases",
    "expected_purchases", "p_alive", "expected_spend", "clv",
    "pareto_nbd_expected_purchases", "pareto_nbd_p_alive", "pareto_nbd_clv",
)
"""Per-customer output. Unprefixed model columns are BG/NBD's; ``pareto_nbd_*`` the Pareto/NBD ones."""


@dataclass(frozen=True)
class ClvFit:
    bg_nbd: BgNbd
    pareto_nbd: ParetoNbd
    gamma_gamma: GammaGamma
    calibration_end: date
    time_unit: str
    horizon_weeks: float
    discount_rate: float
    customers: pd.DataFrame  # CUSTOMER_COLUMNS, highest BG/NBD CLV first

    def to_json(self) -> dict[str, Any]:
        """The JSON shape of ``takt clv fit --json``."""
        return {
            "bg_nbd": self.bg_nbd.as_dict(),
            "pareto_nbd": self.pareto_nbd.as_dict(),
            "gamma_gamma": self.gamma_gamma.as_dict(),
            "calibration_end": self.calibration_end.isoformat(),
            "time_unit": self.time_unit,
            "horizon_weeks": self.horizon_weeks,
            "discount_rate": self.discount_rate,
            "n_customers": len(self.customers),
            "n_repeat_customers": int((self.customers["frequency"] > 0).sum()),
            "customers": _records(self.customers),
        }


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    import numpy as np

    out: list[dict[str, Any]] = []
    cols = list(df.columns)
    for row in df.itertuples(index=False, name=None):
        rec: dict[str, Any] = {}
        for c, v in zip(cols, row, strict=True):
            if isinstance(v, np.generic):
                v = v.item()
            if isinstance(v, float) and not np.isfinite(v):
                v = None  # JSON has no NaN or infinity
            rec[c] = v
        out.append(rec)
    return out


def fit_summary(summary: RfmSummary, *, horizon_weeks: float = 52.0, discount_rate: float = 0.0) -> ClvFit:
    """Fit the three models on ``summary`` and value each of its customers over ``horizon_weeks``."""
    import numpy as np
    import pandas as pd

    from takt.models.clv import bgnbd, gammagamma, paretonbd
    from takt.models.clv.value import lifetime_value
    from takt.models.transactions import TIME_UNITS

    if not np.isfinite(horizon_weeks) or horizon_weeks <= 0:
        raise TaktError(f"the horizon must be a positive number of weeks, got {horizon_weeks:g}",
                        code="invalid_request")
    if not np.isfinite(discount_rate) or not 0 <= discount_rate < 10:
        raise TaktError(f"the annual discount rate must be a fraction in [0, 10), e.g. 0.1 for 10 %; got "
                        f"{discount_rate:g}", code="invalid_request")
    x, t_x, T, m = summary.frequency, summary.recency, summary.age, summary.monetary_value
    if not np.any(x > 0):
        raise TaktError("no customer made a repeat purchase in the calibration period, so purchase rates and "
                        "dropout cannot be estimated; use a later calibration end or more data",
                        code="fit_failed")
    bg = bgnbd.fit(x, t_x, T)
    pn = paretonbd.fit(x, t_x, T)
    gg = gammagamma.fit(x, m)
    unit_days = TIME_UNITS[summary.time_unit]
    horizon = horizon_weeks * 7.0 / unit_days
    spend = gammagamma.expected_spend(gg, x, m)
    # predictions depend on (x, t_x, T) only: compute them once per distinct triple
    keys = np.column_stack([x.astype("float64"), t_x, T])
    distinct, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    ux, ut, uT = distinct[:, 0], distinct[:, 1], distinct[:, 2]
    col = (slice(None), None)
    ones = np.ones(len(ux))

    def bg_cum(t: np.ndarray) -> np.ndarray:
        return bgnbd.expected_purchases(bg, ux[col], ut[col], uT[col], t)

    def pn_cum(t: np.ndarray) -> np.ndarray:
        return paretonbd.expected_purchases(pn, ux[col], ut[col], uT[col], t)

    df = pd.DataFrame({
        "customer_id": summary.customer_id,
        "frequency": x,
        "recency": t_x,
        "T": T,
        "monetary_value": m,
        "holdout_purchases": summary.holdout_purchases,
        "expected_purchases": bgnbd.expected_purchases(bg, ux, ut, uT, horizon)[inverse],
        "p_alive": bgnbd.p_alive(bg, ux, ut, uT)[inverse],
        "expected_spend": spend,
        "clv": spend * lifetime_value(bg_cum, ones, horizon, unit_days, discount_rate)[inverse],
        "pareto_nbd_expected_purchases": paretonbd.expected_purchases(pn, ux, ut, uT, horizon)[inverse],
        "pareto_nbd_p_alive": paretonbd.p_alive(pn, ux, ut, uT)[inverse],
        "pareto_nbd_clv": spend * lifetime_value(pn_cum, ones, horizon, unit_days, discount_rate)[inverse],
    }, columns=list(CUSTOMER_COLUMNS))
    df = df.sort_values(["clv", "customer_id"], ascending=[False, True], kind="stable").reset_index(drop=True)
    return ClvFit(bg, pn, gg, summary.calibration_end, summary.time_unit, float(horizon_weeks),
                  float(discount_rate), df)


def fit_transactions(
    transactions: pd.DataFrame,
    *,
    customer_col: str,
    date_col: str,
    amount_col: str,
    calibration_end: date,
    time_unit: str = "weeks",
    horizon_weeks: float = 52.0,
    discount_rate: float = 0.0,
    date_format: str | None = None,
) -> ClvFit:
    """Prepare ``transactions`` (one row per order; see :mod:`takt.models.transactions`) and fit."""
    from takt.models.transactions import summarize

    summary = summarize(transactions, customer_col=customer_col, date_col=date_col, amount_col=amount_col,
                        calibration_end=calibration_end, time_unit=time_unit, date_format=date_format)
    return fit_summary(summary, horizon_weeks=horizon_weeks, discount_rate=discount_rate)
