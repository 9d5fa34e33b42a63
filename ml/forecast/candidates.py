"""Candidate forecasters. Each maps a regular history to ``horizon`` point forecasts.

The classical ones follow the M-competition practice: test the series for seasonality (the
90% autocorrelation test of the M4 benchmarks), remove a classical decomposition's seasonal
indices when it is seasonal, forecast the adjusted series, and put the season back. The
combination (mean of ETS, Theta and ARIMA) is built in the backtest from its members'
forecasts. Intervals are not taken from the models: they come from each candidate's own
rolling-origin errors (see ``ml.forecast.evaluate``), so all candidates are judged the same way.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd

from ml.forecast.series import DAILY, Frequency

Forecaster = Callable[[pd.Series, int, Frequency], np.ndarray]
COMBINATION = "combination"
COMBINATION_MEMBERS = ("ets", "theta", "arima")


def seasonal_naive(history: pd.Series, horizon: int, freq: Frequency) -> np.ndarray:
    """Repeat the last full season forward (the baseline every model must beat)."""
    season = freq.season
    if len(history) < season:
        raise ValueError(f"need at least {season} observations, got {len(history)}")
    return np.resize(history.to_numpy()[-season:], horizon).astype(float)


def is_seasonal(y: np.ndarray, season: int) -> bool:
    """The M4 benchmarks' test: the lag-``season`` autocorrelation exceeds its 90% bound."""
    n = len(y)
    if season <= 1 or n < 3 * season:
        return False
    x = y - y.mean()
    denom = float(np.dot(x, x))
    if denom == 0.0:
        return False
    acf = np.array([np.dot(x[k:], x[:-k]) / denom for k in range(1, season + 1)])
    limit = 1.645 * math.sqrt((1 + 2 * np.sum(acf[:-1] ** 2)) / n)
    return bool(abs(acf[-1]) > limit)


def seasonal_indices(y: np.ndarray, season: int) -> tuple[np.ndarray, bool]:
    """Classical decomposition's seasonal indices (one per position in the cycle, aligned so
    that index ``i`` belongs to observation ``i``) and whether they are multiplicative.

    Multiplicative for positive series (the usual business case), additive otherwise."""
    multiplicative = bool(np.all(y > 0))
    s = pd.Series(y)
    if season % 2 == 0:
        trend = s.rolling(season, center=True).mean().rolling(2).mean().shift(-1)
    else:
        trend = s.rolling(season, center=True).mean()
    detrended = s / trend if multiplicative else s - trend
    positions = np.arange(len(y)) % season
    idx = detrended.groupby(positions).mean().reindex(range(season)).to_numpy()
    idx = np.nan_to_num(idx, nan=1.0 if multiplicative else 0.0)
    idx = idx / idx.mean() if multiplicative else idx - idx.mean()
    return idx, multiplicative


def _adjusted(
    history: pd.Series, horizon: int, freq: Frequency
) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """The seasonally adjusted history and the function that reseasonalizes a forecast."""
    y = history.to_numpy(dtype=float)
    if not is_seasonal(y, freq.season):
        return y, lambda f: f
    idx, multiplicative = seasonal_indices(y, freq.season)
    n = len(y)
    past = idx[np.arange(n) % freq.season]
    ahead = idx[np.arange(n, n + horizon) % freq.season]
    if multiplicative:
        return y / past, lambda f: f * ahead
    return y - past, lambda f: f + ahead


def ets(history: pd.Series, horizon: int, freq: Frequency) -> np.ndarray:
    """Exponential smoothing with a damped additive trend on the seasonally adjusted series
    (the M4 'Damped' benchmark): robust on short business series where Holt-Winters overfits."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    y, reseason = _adjusted(history, horizon, freq)
    with warnings.catch_warnings():
        # Convergence chatter on short or flat series is expected and not actionable here.
        warnings.simplefilter("ignore")
        fit = ExponentialSmoothing(
            y, trend="add", damped_trend=True, initialization_method="estimated"
        ).fit(use_brute=False)  # the brute-force start grid costs ~50x for no accuracy here
        return reseason(np.asarray(fit.forecast(horizon), dtype=float))


def holt_winters(history: pd.Series, horizon: int, freq: Frequency) -> np.ndarray:
    """Holt-Winters with a damped additive trend and additive season (statsmodels): the
    textbook ETS, kept as a candidate and as the classical baseline of the benchmarks."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    seasonal = "add" if len(history) >= 2 * freq.season and freq.season > 1 else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ExponentialSmoothing(
            history.to_numpy(dtype=float),
            trend="add",
            damped_trend=True,
            seasonal=seasonal,
            seasonal_periods=freq.season if seasonal else None,
            initialization_method="estimated",
        ).fit(use_brute=False)
        return np.asarray(model.forecast(horizon), dtype=float)


def theta(history: pd.Series, horizon: int, freq: Frequency) -> np.ndarray:
    """The Theta method (statsmodels), deseasonalized only when the seasonality test says so
    (multiplicatively for positive data)."""
    from statsmodels.tsa.forecasting.theta import ThetaModel

    positive = bool((history > 0).all())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ThetaModel(
            history.to_numpy(dtype=float),
            period=max(freq.season, 1),
            deseasonalize=freq.season > 1 and len(history) >= 2 * freq.season,
            use_test=True,
            method="multiplicative" if positive else "additive",
        ).fit()
        return np.asarray(model.forecast(horizon), dtype=float)


# ARMA orders tried on the differenced, seasonally adjusted series, best by AICc: with the
# first difference they are ARIMA(p,1,q); (0,0,0) is the random walk (with drift).
ARMA_ORDERS = ((0, 0, 0), (0, 0, 1), (1, 0, 0), (1, 0, 1), (2, 0, 0), (0, 0, 2))


def arima(history: pd.Series, horizon: int, freq: Frequency) -> np.ndarray:
    """ARIMA(p,1,q) (statsmodels) on the seasonally adjusted series, the order chosen by AICc
    on the history alone; a drift only when the mean change is significant (|t| > 2).

    The model is fitted on the standardized differences with a concentrated scale and no
    covariance estimate, which makes it ~50x faster than the default fit for the same
    forecasts; the differences are summed back onto the last value."""
    from statsmodels.tsa.arima.model import ARIMA

    y, reseason = _adjusted(history, horizon, freq)
    dy = np.diff(y)
    if len(dy) < 8:
        raise ValueError(f"need at least 9 observations for ARIMA, got {len(y)}")
    sd = float(np.std(dy, ddof=1)) or 1.0
    drift = float(np.mean(dy))
    if abs(drift) / (sd / math.sqrt(len(dy))) < 2.0:
        drift = 0.0
    w = (dy - drift) / sd
    best: tuple[float, np.ndarray] | None = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for order in ARMA_ORDERS:
            if order == (0, 0, 0):
                aicc, path = _white_noise_aicc(w), np.zeros(horizon)
            else:
                try:
                    fit = ARIMA(w, order=order, trend="n", concentrate_scale=True).fit(
                        cov_type="none"
                    )
                except (ValueError, np.linalg.LinAlgError):
                    continue
                aicc, path = float(fit.aicc), np.asarray(fit.forecast(horizon), dtype=float)
            if math.isfinite(aicc) and (best is None or aicc < best[0]):
                best = (aicc, path)
    if best is None:
        raise ValueError("no ARIMA order could be fitted")
    steps = best[1] * sd + drift
    return reseason(y[-1] + np.cumsum(steps))


def _white_noise_aicc(w: np.ndarray) -> float:
    """AICc of a zero-mean Gaussian with the variance estimated (the ARMA(0,0) case)."""
    n = len(w)
    sigma2 = float(np.mean(w**2)) or 1e-12
    loglike = -0.5 * n * (math.log(2 * math.pi * sigma2) + 1)
    k = 1
    return -2 * loglike + 2 * k + 2 * k * (k + 1) / max(n - k - 1, 1)


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

    daily = freq is DAILY or freq.code == "D"
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
    "holt_winters": holt_winters,
    "theta": theta,
    "arima": arima,
    "prophet": prophet,
}
KNOWN = (*CANDIDATES, COMBINATION)


def combine(predictions: dict[str, np.ndarray]) -> np.ndarray:
    """Mean of the combination members' forecasts that exist (at least two)."""
    members = [predictions[m] for m in COMBINATION_MEMBERS if m in predictions]
    if len(members) < 2:
        raise ValueError(f"the combination needs two of {COMBINATION_MEMBERS}")
    return np.mean(members, axis=0)


def forecast_with(
    name: str, history: pd.Series, horizon: int, freq: Frequency, cache: dict | None = None
) -> np.ndarray:
    """One candidate's forecast; the combination fits (or reuses from ``cache``) its members."""
    cache = {} if cache is None else cache
    if name != COMBINATION:
        if name not in cache:
            cache[name] = CANDIDATES[name](history, horizon, freq)
        return cache[name]
    preds = {}
    for member in COMBINATION_MEMBERS:
        try:
            preds[member] = forecast_with(member, history, horizon, freq, cache)
        except Exception:  # a member that cannot fit leaves the others to combine
            continue
    return combine({k: v for k, v in preds.items() if np.all(np.isfinite(v))})
