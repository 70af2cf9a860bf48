"""Per-profile CLV in the workspace store, and the profile JSON's ``clv`` section.

``takt clv fit --save`` (or ``takt clv score``) writes the latest fit: table ``clv_fits`` keeps one row per
saved fit (parameters and settings as JSON), table ``clv_scores`` holds the per-profile values of the latest
saved fit only (replaced in the same transaction). The ``clv`` section of a profile reads its row; a profile
without one (no order in the calibration period, or never scored) has no ``clv`` key.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pyarrow as pa

from takt.models.offers._db import Sql
from takt.services import services_of
from takt.storage.base import Storage

if TYPE_CHECKING:
    from takt.models.clv.fit import ClvFit

SCORES = "clv_scores"
FITS = "clv_fits"
SCORE_COLUMNS = ("frequency", "recency", "T", "monetary_value", "expected_purchases", "p_alive", "expected_spend",
                 "clv", "pareto_nbd_expected_purchases", "pareto_nbd_p_alive", "pareto_nbd_clv")
SCORES_DDL = f"""
CREATE TABLE IF NOT EXISTS {SCORES} (
    profile_id VARCHAR PRIMARY KEY,
    fit_id BIGINT NOT NULL,
    {", ".join(f'"{c}" DOUBLE' for c in SCORE_COLUMNS)}
)
"""
FITS_DDL = f"""
CREATE TABLE IF NOT EXISTS {FITS} (
    fit_id BIGINT PRIMARY KEY,
    fitted_at TIMESTAMPTZ NOT NULL,
    customers BIGINT NOT NULL,
    summary VARCHAR NOT NULL
)
"""


def save_fit(storage: Storage, fit: ClvFit, now: datetime) -> int:
    """Store the fit and replace every profile's CLV with its values; returns the fit's id. One transaction."""
    sql = Sql(storage)
    sql.ensure(FITS, FITS_DDL)
    sql.ensure(SCORES, SCORES_DDL)
    summary = {k: v for k, v in fit.to_json().items() if k != "customers"}
    c = fit.customers
    with sql.transaction(lock_table=FITS) as tx:
        rows = tx.execute(f"SELECT coalesce(max(fit_id), 0) FROM {FITS}")
        fit_id = int(rows[0][0]) + 1
        tx.execute(f"INSERT INTO {FITS} VALUES (?, ?, ?, ?)",
                   [fit_id, now, len(c), orjson.dumps(summary).decode()])
        tx.execute(f"DELETE FROM {SCORES}")
        cols: dict[str, Any] = {"profile_id": pa.array(c["customer_id"].astype(str).tolist(), pa.string()),
                                "fit_id": pa.array(np.full(len(c), fit_id, dtype="int64"))}
        for col in SCORE_COLUMNS:
            vals = c[col].to_numpy(dtype="float64")
            cols[col] = pa.array(np.where(np.isfinite(vals), vals, np.nan),
                                                               pa.float64(), from_pandas=True)
        tx.insert_rows(SCORES, pa.table(cols))
    return fit_id


def delete_profiles(storage: Storage, profile_ids: list[str]) -> None:
    """Delete the CLV rows of these profiles (an erasure); nothing when CLV was never saved."""
    sql = Sql(storage)
    if profile_ids and sql.has_table(SCORES):
        with sql.transaction() as tx:
            for pid in profile_ids:
                tx.execute(f"DELETE FROM {SCORES} WHERE profile_id = ?", [pid])


def _aware(t: Any) -> datetime:
    return t if isinstance(t, datetime) and t.tzinfo else t.replace(tzinfo=UTC)


class ClvReader:
    """Reads one profile's CLV; remembers that the tables exist once they do."""

    def __init__(self, storage: Storage):
        self.sql = Sql(storage)
        self._ready = False
        self._next_check = 0.0
        self._fit: tuple[int, dict[str, Any]] | None = None

    def _tables(self) -> bool:
        """Whether CLV was ever saved (a missing table is looked for again at most every 5 s)."""
        if not self._ready and time.monotonic() >= self._next_check:
            self._ready = self.sql.has_table(SCORES) and self.sql.has_table(FITS)
            self._next_check = time.monotonic() + 5.0
        return self._ready

    def latest_fit(self) -> dict[str, Any] | None:
        if not self._tables():
            return None
        rows = self.sql.query(f"SELECT fit_id, fitted_at, customers, summary FROM {FITS} ORDER BY fit_id DESC LIMIT 1")
        if not rows:
            return None
        fid, at, n, summary = rows[0]
        return {"fit_id": int(fid), "fitted_at": _aware(at).isoformat().replace("+00:00", "Z"), "customers": int(n),
                **orjson.loads(summary)}

    def profile(self, profile_id: str) -> dict[str, Any] | None:
        if not self._tables():
            return None
        quoted = ", ".join(f'"{c}"' for c in SCORE_COLUMNS)
        rows = self.sql.query(f"SELECT fit_id, {quoted} FROM {SCORES} WHERE profile_id = ?", [profile_id])
        if not rows:
            return None
        fid = int(rows[0][0])
        if self._fit is None or self._fit[0] != fid:
            fit = self.latest_fit()
            if fit is None:
                return None
            self._fit = (fid, fit)
        fit = self._fit[1]
        values = {c: (None if v is None or (isinstance(v, float) and not np.isfinite(v)) else round(float(v), 6))
                  for c, v in zip(SCORE_COLUMNS, rows[0][1:], strict=True)}
        return {
            "expected_purchases": values["expected_purchases"], "p_alive": values["p_alive"],
            "expected_spend": values["expected_spend"], "clv": values["clv"],
            "pareto_nbd": {"expected_purchases": values["pareto_nbd_expected_purchases"],
                           "p_alive": values["pareto_nbd_p_alive"], "clv": values["pareto_nbd_clv"]},
            "frequency": int(values["frequency"] or 0), "recency": values["recency"], "T": values["T"],
            "monetary_value": values["monetary_value"],
            "horizon_weeks": fit.get("horizon_weeks"), "discount_rate": fit.get("discount_rate"),
            "time_unit": fit.get("time_unit"), "calibration_end": fit.get("calibration_end"),
            "fitted_at": fit.get("fitted_at"), "fit_id": fid,
            "model": "BG/NBD × Gamma-Gamma (Pareto/NBD alongside)",
        }


def clv_section(storage: Storage, profile: dict[str, Any], now: datetime) -> Any:
    """The profile JSON's ``clv`` section (``None``: no stored CLV for this profile, or a storage that holds
    no model tables)."""
    if not isinstance(storage, Storage):
        return None
    return services_of(storage).clv.profile(str(profile.get("id")))


def register() -> None:
    from takt.profiles.sections import register_section

    register_section("clv", clv_section)
