"""Candidate forecasters. Each maps a regular history to ``horizon`` point forecasts.

Intervals are not taken from the models: they come from each candidate's own
rolling-origin errors (see ``backtest``), so all candidates are judged the same way.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd

from ml.forecast.series import DAILY, Frequency

Forecaster = Callable[[pd.Series, int, Frequency], np.ndarray]


def seasonal_naive(history: pd.Series, horizon: int, freq: Frequency) -> np.ndarray:
    """Repeat the last full season forward (the baseline every model must beat)."""
    season = freq.season
    if len(history) < season:
        raise ValueError(f"need at least {season} observations, got {len(history)}")
    return np.resize(history.to_numpy()[-season:], horizon).astype(float)


def ets(history: pd.Series, horizon: int, freq: Frequency) -> np.ndarray:
    """Holt-Winters with a damped additive trend and additive season (statsmodels)."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    seasonal = "add" if len(history) >= 2 * freq.season else None
    with warnings.catch_warnings():
        # Convergence chatter on short or flat series is expected and not actionable here.
        warnings.simplefilter("ignore")
        model = ExponentialSmoothing(
            history,
            trend="add",
            damped_trend=True,
            seasonal=seasonal,
            seasonal_periods=freq.season if seasonal else None,
            initialization_method="estimated",
        ).fit(use_brute=False)  # the brute-force start grid costs ~50x for no accuracy here
        return np.asarray(model.forecast(horizon), dtype=float)


def theta(history: pd.Series, horizon: int, freq: Frequency) -> np.ndarray:
    """Theta method (statsmodels) with multiplicative deseasonalising when data are positive."""
    from statsmodels.tsa.forecasting.theta import ThetaModel

    positive = bool((history > 0).all())
    deseasonalize = len(history) >= 2 * freq.season
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ThetaModel(
            history,
            period=freq.season,
            deseasonalize=deseasonalize,
            method="multiplicative" if positive else "additive",
        ).fit()
        return np.asarray(model.forecast(horizon), dtype=float)


def _quiet_prophet() -> None:
    for name in ("cmdstanpy", "prophet", "prophet.plot"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _salary_flags(ds: pd.Series) -> pd.DataFrame:
    # Indian salaries land on the last working day or the 1st: payments and retries spike there.
    ds = pd.to_datetime(ds)
    return pd.DataFrame(
        {
            "salary_first": (ds.dt.day == 1).astype(float),
            "salary_last": ds.dt.is_month_end.astype(float),
        }
    )


def prophet(history: pd.Series, horizon: int, freq: Frequency) -> np.ndarray:
    """Prophet with Indian holidays, weekly/yearly seasonality and salary-day regressors."""
    _quiet_prophet()
    with warnings.catch_warnings():
        # prophet asks the holidays package for 1995-2045 while it covers 2001-2035; the
        # warning repeats on every regressor and is not actionable.
        warnings.simplefilter("ignore", UserWarning)
        return _prophet(history, horizon, freq)


def _prophet(history: pd.Series, horizon: int, freq: Frequency) -> np.ndarray:
    from prophet import Prophet

    daily = freq is DAILY
    span_days = (history.index[-1] - history.index[0]).days
    model = Prophet(
        weekly_seasonality=daily,
        yearly_seasonality=span_days >= 365,
        daily_seasonality=False,
        # Intervals come from the backtest, so skip simulating 1000 paths per prediction.
        uncertainty_samples=0,
    )
    frame = pd.DataFrame({"ds": history.index, "y": history.to_numpy()})
    if daily:
        model.add_country_holidays(country_name="IN")
        flags = _salary_flags(frame["ds"])
        for col in flags.columns:
            model.add_regressor(col)
        frame = pd.concat([frame, flags], axis=1)
    model.fit(frame)
    future = model.make_future_dataframe(periods=horizon, freq=freq.code, include_history=False)
    if daily:
        future = pd.concat([future, _salary_flags(future["ds"])], axis=1)
    return model.predict(future)["yhat"].to_numpy(dtype=float)


CANDIDATES: dict[str, Forecaster] = {
    "seasonal_naive": seasonal_naive,
    "ets": ets,
    "theta": theta,
    "prophet": prophet,
}
