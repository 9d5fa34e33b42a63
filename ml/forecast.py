"""Revenue forecasting. First version: seasonal-naive daily forecast with a holdout score.

Input schema: a DataFrame with ``ds`` (date) and ``y`` (numeric). Output: ``ds, yhat,
yhat_lower, yhat_upper, model``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class ForecastResult:
    forecast: pd.DataFrame
    metrics: dict[str, float]
    model: str


def _regular(df: pd.DataFrame) -> pd.Series:
    if not {"ds", "y"} <= set(df.columns):
        raise ValueError(f"expected columns ds and y, got {list(df.columns)}")
    s = df.assign(ds=pd.to_datetime(df["ds"])).set_index("ds")["y"].astype("float64")
    s = s.groupby(level=0).sum().sort_index()
    return s.asfreq("D", fill_value=0.0)


def seasonal_naive(history: pd.Series, horizon: int, season: int = 7) -> np.ndarray:
    """Repeat the last full season forward."""
    if len(history) < season:
        raise ValueError(f"need at least {season} observations, got {len(history)}")
    last = history.to_numpy()[-season:]
    return np.resize(last, horizon)


def smape(actual: np.ndarray, pred: np.ndarray) -> float:
    denom = np.abs(actual) + np.abs(pred)
    ratio = np.where(denom == 0, 0.0, 2.0 * np.abs(actual - pred) / np.where(denom == 0, 1, denom))
    return float(np.mean(ratio))


def fit_forecast(
    df: pd.DataFrame, horizon: int = 28, season: int = 7, holdout: int = 28
) -> ForecastResult:
    """Seasonal-naive forecast of ``horizon`` days with an 80% interval from holdout residuals."""
    if horizon <= 0:
        raise ValueError("horizon must be positive")
    series = _regular(df)
    if len(series) < holdout + 2 * season:
        raise ValueError(f"need at least {holdout + 2 * season} days of history, got {len(series)}")
    train, test = series.iloc[:-holdout], series.iloc[-holdout:]
    pred = seasonal_naive(train, holdout, season)
    residuals = test.to_numpy() - pred
    mae = float(np.mean(np.abs(residuals)))
    metrics = {
        "holdout_days": float(holdout),
        "holdout_mae": mae,
        "holdout_smape": smape(test.to_numpy(), pred),
    }
    q_lo, q_hi = np.quantile(residuals, [0.1, 0.9])
    point = seasonal_naive(series, horizon, season)
    future = pd.date_range(series.index[-1] + pd.Timedelta(days=1), periods=horizon, freq="D")
    forecast = pd.DataFrame(
        {
            "ds": future,
            "yhat": point,
            "yhat_lower": np.maximum(point + q_lo, 0.0),
            "yhat_upper": point + q_hi,
            "model": "seasonal_naive",
        }
    )
    return ForecastResult(forecast=forecast, metrics=metrics, model="seasonal_naive")
