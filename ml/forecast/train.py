"""Fit a forecast: backtest the candidates on the series itself, choose the best, forecast
with intervals calibrated on the chosen model's backtest errors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ml.forecast.candidates import COMBINATION, KNOWN, forecast_with
from ml.forecast.evaluate import (
    apply_bounds,
    backtest,
    cross_fold_coverage,
    default_for,
    plan_folds,
    step_bounds,
    summarize,
)
from ml.forecast.series import DAILY, ForecastInputError, Frequency, regularize

DEFAULT_CANDIDATES = ("seasonal_naive", "ets", "theta", "arima", COMBINATION, "prophet")
BASELINE = "seasonal_naive"


@dataclass(frozen=True)
class ForecastResult:
    forecast: pd.DataFrame
    metrics: dict[str, float]
    model: str
    backtest: pd.DataFrame = field(default_factory=pd.DataFrame)
    summary: pd.DataFrame = field(default_factory=pd.DataFrame)
    frequency: str = "daily"
    failures: dict[str, str] = field(default_factory=dict)


def _default_holdout(horizon: int, freq: Frequency) -> int:
    # Daily series: four weeks per fold is plenty to judge and keeps Prophet affordable.
    return min(horizon, 28) if freq is DAILY else horizon


def _frequency(df: pd.DataFrame, season: int | None) -> tuple[pd.Series, Frequency]:
    series, freq = regularize(df)
    if season is not None:
        if season < 1:
            raise ForecastInputError(f"season must be >= 1, got {season}")
        freq = Frequency(freq.code, season, freq.name)
    return series, freq


def fit_forecast(
    df: pd.DataFrame,
    horizon: int = 28,
    season: int | None = None,
    holdout: int | None = None,
    *,
    candidates: Sequence[str] = DEFAULT_CANDIDATES,
    folds: int = 3,
    interval: float = 0.8,
) -> ForecastResult:
    """Backtest the candidates, pick the best by sMAPE and MASE, forecast ``horizon`` periods.

    On histories shorter than ``SELECT_SEASONS`` seasons the combination is kept unless a
    single candidate beats it clearly (``SWITCH_MARGIN``); on longer ones the best-ranked wins.

    ``df`` has ``ds`` (dates, daily or monthly) and ``y``. ``season`` overrides the seasonal
    period (7 daily, 12 monthly). Fold windows are ``holdout`` periods long (default: the
    horizon, at most 28 days), shortened and overlapped for short histories. The interval
    is the ``interval`` central range of the chosen model's backtest errors per step ahead;
    ``metrics['interval_coverage']`` is how often such intervals held the truth across folds.
    """
    if horizon <= 0:
        raise ForecastInputError(f"horizon must be positive, got {horizon}")
    if not 0 < interval < 1:
        raise ForecastInputError(f"interval must be between 0 and 1, got {interval}")
    unknown = [c for c in candidates if c not in KNOWN]
    if unknown or not candidates:
        raise ForecastInputError(f"unknown candidates {unknown}; choose from {sorted(KNOWN)}")
    series, freq = _frequency(df, season)
    min_train = max(2 * freq.season, 8)
    wanted = holdout or _default_holdout(horizon, freq)
    # At least a season (or the whole horizon, if shorter) to test on.
    need = min_train + min(wanted, max(freq.season, 3))
    if len(series) < need:
        raise ForecastInputError(
            f"need at least {need} {freq.name} observations "
            f"({min_train} to train, {need - min_train} to test), got {len(series)}"
        )
    plan = plan_folds(len(series), horizon, min_train, folds, wanted)
    names = list(dict.fromkeys([BASELINE, *candidates]))
    bt = backtest(series, freq, names, plan)
    if bt.table.empty:
        raise ForecastInputError(f"every candidate failed: {bt.failures}")
    summary = summarize(bt.table, default_for(len(series), freq.season), BASELINE)
    best = str(summary.iloc[0]["candidate"])
    point = forecast_with(best, series, horizon, freq)
    bounds = step_bounds(bt.errors[best], horizon, interval)
    lower, upper = apply_bounds(point, bounds, bt.relative)
    if (series >= 0).all():
        # Revenue cannot go negative; clip only when the history agrees.
        point, lower, upper = (np.maximum(a, 0.0) for a in (point, lower, upper))
    future = pd.date_range(series.index[-1], periods=horizon + 1, freq=freq.code)[1:]
    forecast = pd.DataFrame(
        {"ds": future, "yhat": point, "yhat_lower": lower, "yhat_upper": upper, "model": best}
    )
    chosen = summary.set_index("candidate")
    last_fold = bt.table[bt.table["fold"] == bt.table["fold"].max()].set_index("candidate")
    base = chosen.loc[BASELINE] if BASELINE in chosen.index else None
    metrics = {
        "holdout_days": float(plan.length) if freq is DAILY else float(plan.length * 30),
        "holdout_periods": float(plan.length),
        "folds": float(plan.count),
        "holdout_mae": float(chosen.loc[best, "mae"]),
        "holdout_smape": float(chosen.loc[best, "smape"]),
        "holdout_mase": float(chosen.loc[best, "mase"]),
        "baseline_smape": float(base["smape"]) if base is not None else np.nan,
        "baseline_mase": float(base["mase"]) if base is not None else np.nan,
        "last_fold_smape": float(last_fold.loc[best, "smape"]),
        "interval": float(interval),
        "interval_coverage": cross_fold_coverage(bt.errors[best], interval),
        "interval_width_mean": float(np.mean(upper - lower)),
    }
    return ForecastResult(
        forecast=forecast,
        metrics=metrics,
        model=best,
        backtest=bt.table,
        summary=summary,
        frequency=freq.name,
        failures=bt.failures,
    )


def holdout_predictions(
    df: pd.DataFrame, model: str, holdout: int, season: int | None = None
) -> pd.DataFrame:
    """``ds, y, yhat`` of ``model`` fit without the last ``holdout`` periods: the
    forecast-against-actuals picture of data the model did not see."""
    if model not in KNOWN:
        raise ForecastInputError(f"unknown model {model!r}; choose from {sorted(KNOWN)}")
    series, freq = _frequency(df, season)
    if holdout <= 0 or len(series) <= holdout + freq.season:
        raise ForecastInputError(
            f"need more than {holdout + freq.season} periods, got {len(series)}"
        )
    train, test = series.iloc[:-holdout], series.iloc[-holdout:]
    pred = forecast_with(model, train, holdout, freq)
    return pd.DataFrame({"ds": test.index, "y": test.to_numpy(), "yhat": pred})
