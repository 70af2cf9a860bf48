"""Transactions → the per-customer summary that customer-base models use (frequency, recency, age, spend).

The preparation follows the customer-base-analysis literature (Fader, Hardie & Lee 2005):

- several purchases of one customer on one day are one transaction (their amounts are summed);
- only the calibration period counts: transactions on or before ``calibration_end`` (that whole day);
- ``frequency`` is the number of *repeat* transactions (the first purchase is not a repeat);
- ``recency`` is the time from the first to the last transaction, ``age`` (``T``) the time from the first
  transaction to the end of ``calibration_end`` (as ``calibration_end - first day``), both in the time unit;
- ``monetary_value`` is the mean amount of the repeat transactions (0 for customers without one).

Transactions after ``calibration_end`` are counted per customer as ``holdout_purchases`` (day-collapsed),
which lets a caller compare forecasts with what happened. Nothing here reads the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from takt.errors import TaktError

TIME_UNITS: dict[str, float] = {"days": 1.0, "weeks": 7.0, "months": 365.25 / 12}
"""Length of each supported time unit in days (a month is a twelfth of a Julian year)."""

# Tried in order when a date column holds text; the first that parses every value wins.
DATE_FORMATS: tuple[str, ...] = ("ISO8601", "%Y%m%d", "%Y/%m/%d", "%d.%m.%Y", "%m/%d/%Y", "%d/%m/%Y",
                                 "%d-%m-%Y", "%b %d %Y", "%d %b %Y")


def _error(message: str, code: str = "invalid_transactions") -> TaktError:
    return TaktError(message=message, code=code, status=400)


@dataclass(frozen=True)
class RfmSummary:
    """One row per customer who bought in the calibration period (arrays aligned by position)."""

    customer_id: np.ndarray  # object (str)
    frequency: np.ndarray  # int64, repeat transactions x
    recency: np.ndarray  # float64, t_x
    age: np.ndarray  # float64, T
    monetary_value: np.ndarray  # float64, mean repeat amount (0 when x == 0)
    holdout_purchases: np.ndarray  # int64, day-collapsed transactions after calibration_end
    calibration_end: date
    time_unit: str

    def __len__(self) -> int:
        return len(self.customer_id)


# ---- reading files ----
def read_transactions(path: str | Path, *, sep: str = "auto", header: bool = True) -> pd.DataFrame:
    """Read a CSV (any delimiter, or whitespace-separated) or Parquet file as it is.

    Text files are read with every column as text so that identifiers keep leading zeros; without a
    header the columns are named by position from 1 (``"1"``, ``"2"``, …).
    """
    p = Path(path)
    if not p.exists():
        raise _error(f"transaction file {str(p)!r} does not exist", code="not_found")
    if p.is_dir():
        raise _error(f"transaction file {str(p)!r} is a folder")
    if p.suffix.lower() in (".parquet", ".pq"):
        try:
            return pd.read_parquet(p)
        except Exception as e:  # pyarrow raises many types for a damaged file
            raise _error(f"cannot read Parquet file {str(p)!r}: {e}") from None
    try:
        with p.open("r", encoding="utf-8-sig") as fh:
            first = fh.readline()
    except UnicodeDecodeError:
        raise _error(f"{str(p)!r} is not a UTF-8 text file (CSV) nor a .parquet file") from None
    if not first.strip():
        raise _error(f"transaction file {str(p)!r} is empty")
    delimiter = _delimiter(first) if sep == "auto" else ("whitespace" if sep == "whitespace" else sep)
    kwargs: dict[str, object] = {"dtype": str, "keep_default_na": False, "encoding": "utf-8-sig"}
    if delimiter == "whitespace":
        kwargs["sep"] = r"\s+"
    else:
        kwargs["sep"] = delimiter
    if not header:
        kwargs["header"] = None
    try:
        df = pd.read_csv(p, **kwargs)  # type: ignore[call-overload]
    except (pd.errors.ParserError, ValueError) as e:
        raise _error(f"cannot parse {str(p)!r} as delimited text: {e}") from None
    if not header:
        df.columns = [str(i + 1) for i in range(df.shape[1])]
    else:
        df.columns = [str(c).strip() for c in df.columns]
    return df


def _delimiter(first_line: str) -> str:
    for d in (",", "\t", ";", "|"):
        if d in first_line:
            return d
    return "whitespace"


# ---- parsing columns ----
def parse_dates(values: pd.Series, column: str, date_format: str | None = None) -> pd.Series:
    """Calendar days (datetime64 at midnight) from datetimes, dates, YYYYMMDD integers or common text formats.

    Text is read with ``date_format`` (a ``strftime`` format) when given, else with the first of
    :data:`DATE_FORMATS` that reads every value (so ``01/02/2024`` is January 2nd unless a value such as
    ``13/02/2024`` rules that out). Time-zone aware values are converted to UTC first. Raises a
    :class:`TaktError` naming the column and the first value that cannot be read.
    """
    if pd.api.types.is_datetime64_any_dtype(values):
        s = values
        if getattr(s.dt, "tz", None) is not None:
            s = s.dt.tz_convert("UTC").dt.tz_localize(None)
        if s.isna().any():
            raise _error(f"date column {column!r} has an empty value in row {_first_row(s.isna())}")
        return s.dt.normalize().astype("datetime64[ns]")
    if pd.api.types.is_integer_dtype(values) or pd.api.types.is_float_dtype(values):
        if values.isna().any():
            raise _error(f"date column {column!r} has an empty value in row {_first_row(values.isna())}")
        text = values.astype("int64").astype(str)
    elif len(values) and all(isinstance(v, date | datetime) for v in values):
        return parse_dates(pd.to_datetime(pd.Series(list(values), index=values.index), utc=True), column)
    else:
        text = values.astype(str).str.strip()
    empty = text.isin(["", "nan", "NaT", "None"])
    if empty.any():
        raise _error(f"date column {column!r} has an empty value in row {_first_row(empty)}")
    if date_format:
        try:
            parsed = pd.to_datetime(text, format=date_format, utc=True)
        except (ValueError, TypeError, OverflowError) as e:
            raise _error(f"date column {column!r}: cannot parse with format {date_format!r}: {e}") from None
        return parsed.dt.tz_localize(None).dt.normalize().astype("datetime64[ns]")
    for fmt in DATE_FORMATS:
        if fmt == "%Y%m%d" and not text.str.fullmatch(r"\d{8}").all():
            continue
        if fmt == "ISO8601" and not text.str.match(r"\d{4}-\d{2}-\d{2}").all():
            continue
        try:
            parsed = pd.to_datetime(text, format=fmt, utc=True)
        except (ValueError, TypeError, OverflowError):
            continue
        return parsed.dt.tz_localize(None).dt.normalize().astype("datetime64[ns]")
    bad = _first_unparseable(text)
    raise _error(f"date column {column!r}: cannot parse {bad!r} as a date (use YYYY-MM-DD, an ISO 8601 "
                 "timestamp, YYYYMMDD, or DD.MM.YYYY / MM/DD/YYYY)")


def _first_unparseable(text: pd.Series) -> str:
    for v in text:
        ok = False
        for fmt in DATE_FORMATS:
            try:
                pd.to_datetime(v, format=fmt)
            except (ValueError, TypeError, OverflowError):
                continue
            ok = True
            break
        if not ok:
            return str(v)
    return str(text.iloc[0])  # every value parses alone but no single format fits all of them


def parse_amounts(values: pd.Series, column: str) -> np.ndarray:
    """Non-negative finite amounts; raises a :class:`TaktError` naming the column and the first bad row."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        nums = pd.to_numeric(values, errors="coerce").astype("float64")
        raw = values
    else:
        raw = values.astype(str).str.strip()
        nums = pd.to_numeric(raw.str.replace(r"^\$", "", regex=True), errors="coerce").astype("float64")
    arr = nums.to_numpy(dtype="float64", na_value=np.nan)
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.argmax(bad))
        raise _error(f"amount column {column!r}: {str(raw.iloc[i])!r} in row {i + 1} is not a number")
    neg = arr < 0
    if neg.any():
        i = int(np.argmax(neg))
        raise _error(f"amount column {column!r} has a negative amount ({arr[i]:g}) in row {i + 1}; "
                     "remove refunds or net them against their orders first")
    return arr


def _first_row(mask: pd.Series) -> int:
    return int(np.argmax(mask.to_numpy())) + 1


# ---- the summary ----
def summarize(
    transactions: pd.DataFrame,
    *,
    customer_col: str,
    date_col: str,
    amount_col: str,
    calibration_end: date,
    time_unit: str = "weeks",
    date_format: str | None = None,
) -> RfmSummary:
    """The per-customer summary of ``transactions`` for a calibration period ending on ``calibration_end``."""
    if time_unit not in TIME_UNITS:
        raise _error(f"unknown time unit {time_unit!r}; use one of {', '.join(TIME_UNITS)}")
    missing = [c for c in (customer_col, date_col, amount_col) if c not in transactions.columns]
    if missing:
        have = ", ".join(repr(str(c)) for c in list(transactions.columns)[:20])
        raise _error(f"missing column{'s' if len(missing) > 1 else ''} "
                     f"{', '.join(repr(c) for c in missing)} (the file has {have})")
    if len(transactions) == 0:
        raise _error("there are no transactions")
    cust = transactions[customer_col]
    no_id = cust.isna() | (cust.astype(str).str.strip() == "")
    if no_id.any():
        raise _error(f"customer column {customer_col!r} has an empty value in row {_first_row(no_id)}")
    days = parse_dates(transactions[date_col], date_col, date_format)
    amounts = parse_amounts(transactions[amount_col], amount_col)
    end = pd.Timestamp(calibration_end)
    df = pd.DataFrame({"c": cust.astype(str).str.strip().to_numpy(), "d": days.to_numpy(), "m": amounts})
    cal = df[df["d"] <= end]
    if cal.empty:
        first = df["d"].min().date()
        raise _error(f"the calibration period is empty: no transaction on or before {calibration_end} "
                     f"(the earliest is on {first})", code="empty_calibration")
    unit_days = TIME_UNITS[time_unit]
    daily = cal.groupby(["c", "d"], sort=True, as_index=False)["m"].sum()
    g = daily.groupby("c", sort=True)
    first_day = g["d"].min()
    last_day = g["d"].max()
    n_days = g["d"].size()
    total = g["m"].sum()
    first_amount = daily.loc[g["d"].idxmin().to_numpy(), ["c", "m"]].set_index("c")["m"]
    x = (n_days - 1).to_numpy(dtype="int64")
    repeat_total = (total - first_amount.reindex(total.index)).to_numpy(dtype="float64")
    monetary = np.zeros(len(x), dtype="float64")
    has = x > 0
    monetary[has] = np.maximum(repeat_total[has], 0.0) / x[has]
    recency = ((last_day - first_day).dt.days.to_numpy(dtype="float64")) / unit_days
    age = ((end - first_day).dt.days.to_numpy(dtype="float64")) / unit_days
    hold = df[df["d"] > end].drop_duplicates(["c", "d"]).groupby("c").size()
    holdout = hold.reindex(first_day.index, fill_value=0).to_numpy(dtype="int64")
    return RfmSummary(
        customer_id=first_day.index.to_numpy(dtype=object),
        frequency=x,
        recency=recency,
        age=age,
        monetary_value=monetary,
        holdout_purchases=holdout,
        calibration_end=calibration_end,
        time_unit=time_unit,
    )


def parse_day(text: str, what: str = "calibration end") -> date:
    """A YYYY-MM-DD (or YYYYMMDD) day given by a user."""
    t = text.strip()
    for fmt in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return datetime.strptime(t, fmt).date()
        except ValueError:
            continue
    raise _error(f"{what}: cannot parse {text!r} as a day (use YYYY-MM-DD)", code="invalid_request")
