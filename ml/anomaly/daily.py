"""Flag days whose actual value falls outside the forecast interval."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.anomaly.features import TransactionInputError


def daily_anomalies(actuals: pd.DataFrame, forecast: pd.DataFrame) -> pd.DataFrame:
    """Join ``actuals (ds, y)`` to ``forecast (ds, yhat, yhat_lower, yhat_upper)``.

    Returns ``ds, y, yhat, yhat_lower, yhat_upper, is_anomaly, direction, deviation`` for
    days present in both; ``direction`` is ``above``/``below``/``within`` and ``deviation``
    is how far outside the interval, relative to the interval width.
    """
    for name, frame, cols in (
        ("actuals", actuals, {"ds", "y"}),
        ("forecast", forecast, {"ds", "yhat", "yhat_lower", "yhat_upper"}),
    ):
        if not cols <= set(frame.columns):
            raise TransactionInputError(
                f"{name} needs columns {sorted(cols)}, got {list(frame.columns)}"
            )
    a = actuals[["ds", "y"]].assign(ds=pd.to_datetime(actuals["ds"]).dt.normalize())
    a = a.groupby("ds", as_index=False)["y"].sum()
    f = forecast[["ds", "yhat", "yhat_lower", "yhat_upper"]].assign(
        ds=pd.to_datetime(forecast["ds"]).dt.normalize()
    )
    if f["ds"].duplicated().any():
        raise TransactionInputError("forecast has more than one row for some days")
    out = a.merge(f, on="ds", how="inner").sort_values("ds").reset_index(drop=True)
    above = out["y"] > out["yhat_upper"]
    below = out["y"] < out["yhat_lower"]
    width = (out["yhat_upper"] - out["yhat_lower"]).clip(lower=1e-9)
    out["is_anomaly"] = above | below
    out["direction"] = np.select([above, below], ["above", "below"], default="within")
    gap = np.where(
        above, out["y"] - out["yhat_upper"], np.where(below, out["yhat_lower"] - out["y"], 0.0)
    )
    out["deviation"] = gap / width
    return out


def recent_anomalies(
    history: pd.DataFrame, window: int = 28, interval: float = 0.8
) -> pd.DataFrame:
    """Judge the last ``window`` days of ``history (ds, y)`` against a forecast made without
    them (seasonal naive or ETS, picked by backtest); returns :func:`daily_anomalies` rows."""
    from ml.forecast import fit_forecast

    series = history.assign(ds=pd.to_datetime(history["ds"])).sort_values("ds")
    cut = series["ds"].max() - pd.Timedelta(days=window)
    past, recent = series[series["ds"] <= cut], series[series["ds"] > cut]
    if recent.empty:
        raise TransactionInputError(f"no days in the last {window} days to judge")
    result = fit_forecast(
        past, horizon=window, candidates=("seasonal_naive", "ets"), interval=interval
    )
    out = daily_anomalies(recent, result.forecast)
    out["model"] = result.model
    return out
