"""Turn a ``ds, y`` frame into a regular daily or monthly series."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


class ForecastInputError(ValueError):
    """The input series cannot be forecast; the message says what is wrong."""


@dataclass(frozen=True)
class Frequency:
    code: str  # pandas offset alias
    season: int  # main seasonal period
    name: str


DAILY = Frequency("D", 7, "daily")
MONTHLY = Frequency("MS", 12, "monthly")


def infer_frequency(ds: pd.Series) -> Frequency:
    """Daily when consecutive dates are mostly a day apart, monthly when ~a month apart."""
    dates = pd.Series(pd.to_datetime(ds).unique()).sort_values()
    if len(dates) < 2:
        raise ForecastInputError("need at least two distinct dates to infer the frequency")
    gap_days = dates.diff().dropna().dt.total_seconds().median() / 86400
    if gap_days <= 1.5:
        return DAILY
    if 27 <= gap_days <= 32:
        return MONTHLY
    raise ForecastInputError(
        f"unsupported spacing of {gap_days:.1f} days between dates; pass daily or monthly data"
    )


def regularize(df: pd.DataFrame, freq: Frequency | None = None) -> tuple[pd.Series, Frequency]:
    """Sum duplicates per period and fill missing periods with zero (no revenue that day)."""
    if not {"ds", "y"} <= set(df.columns):
        raise ForecastInputError(f"expected columns ds and y, got {list(df.columns)}")
    if df.empty:
        raise ForecastInputError("the series is empty")
    try:
        ds = pd.to_datetime(df["ds"])
    except (ValueError, TypeError) as exc:
        raise ForecastInputError(f"column ds has values that are not dates: {exc}") from exc
    if getattr(ds.dt, "tz", None) is not None:
        ds = ds.dt.tz_convert("UTC").dt.tz_localize(None)
    y = pd.to_numeric(df["y"], errors="coerce")
    if y.isna().any():
        bad = df.loc[y.isna(), "y"].head(3).tolist()
        raise ForecastInputError(f"column y has missing or non-numeric values, e.g. {bad}")
    freq = freq or infer_frequency(ds)
    ds = ds.dt.to_period("M").dt.to_timestamp() if freq is MONTHLY else ds.dt.normalize()
    series = (
        pd.Series(y.astype("float64").to_numpy(), index=pd.DatetimeIndex(ds)).groupby(level=0).sum()
    )
    series = series.sort_index().asfreq(freq.code, fill_value=0.0)
    series.index.name = "ds"
    return series, freq
