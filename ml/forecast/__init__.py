"""Revenue forecasting: candidates (Prophet, ETS, Theta, seasonal naive) compared by a
rolling-origin backtest; the best by sMAPE and MASE forecasts with backtest-error intervals.

Input: a DataFrame with ``ds`` (date) and ``y`` (numeric), daily or monthly. Output frame:
``ds, yhat, yhat_lower, yhat_upper, model``. ``horizon`` counts periods of the series.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ml.forecast.candidates import CANDIDATES, seasonal_naive
from ml.forecast.metrics import mase, smape
from ml.forecast.series import DAILY, MONTHLY, ForecastInputError, Frequency, regularize

DEFAULT_CANDIDATES = ("seasonal_naive", "ets", "theta", "prophet")
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


def backtest(
    series: pd.Series,
    freq: Frequency,
    candidates: Sequence[str],
    holdout: int,
    folds: int,
) -> tuple[pd.DataFrame, dict[str, np.ndarray], dict[str, str]]:
    """Rolling-origin evaluation: ``folds`` consecutive test windows of ``holdout`` periods.

    Returns the table (candidate, fold, cutoff, smape, mase, mae), each candidate's pooled
    out-of-sample residuals (for intervals) and the candidates that failed, with why.
    """
    n = len(series)
    rows: list[dict[str, object]] = []
    residuals: dict[str, list[np.ndarray]] = {c: [] for c in candidates}
    failures: dict[str, str] = {}
    for fold in range(folds):
        cutoff = n - holdout * (folds - fold)
        train, test = series.iloc[:cutoff], series.iloc[cutoff : cutoff + holdout]
        for name in candidates:
            if name in failures:
                continue
            try:
                pred = CANDIDATES[name](train, len(test), freq)
            except Exception as exc:  # a candidate that cannot fit is dropped, not fatal
                failures[name] = f"{type(exc).__name__}: {exc}"
                continue
            if not np.all(np.isfinite(pred)):
                failures[name] = "produced non-finite forecasts"
                continue
            actual = test.to_numpy()
            residuals[name].append(actual - pred)
            rows.append(
                {
                    "candidate": name,
                    "fold": fold,
                    "cutoff": train.index[-1],
                    "smape": smape(actual, pred),
                    "mase": mase(actual, pred, train.to_numpy(), freq.season),
                    "mae": float(np.mean(np.abs(actual - pred))),
                }
            )
    table = pd.DataFrame(rows, columns=["candidate", "fold", "cutoff", "smape", "mase", "mae"])
    table = table[~table["candidate"].isin(failures)].reset_index(drop=True)
    pooled = {c: np.concatenate(r) for c, r in residuals.items() if r and c not in failures}
    return table, pooled, failures


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Mean sMAPE/MASE per candidate and a rank-sum; the first row is the chosen model."""
    summary = table.groupby("candidate", as_index=False)[["smape", "mase", "mae"]].mean()
    # MASE is NaN on a constant history; rank it last rather than dropping the candidate.
    summary["rank"] = summary["smape"].rank(method="min") + summary["mase"].rank(
        method="min", na_option="bottom"
    )
    return summary.sort_values(["rank", "mase", "smape"]).reset_index(drop=True)


def _default_holdout(horizon: int, freq: Frequency) -> int:
    return min(horizon, 28 if freq is DAILY else 6)


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

    ``season`` overrides the seasonal period (7 for daily, 12 for monthly). The interval is
    the ``interval`` central range of the chosen model's out-of-sample backtest errors.
    """
    if horizon <= 0:
        raise ForecastInputError(f"horizon must be positive, got {horizon}")
    if not 0 < interval < 1:
        raise ForecastInputError(f"interval must be between 0 and 1, got {interval}")
    unknown = [c for c in candidates if c not in CANDIDATES]
    if unknown or not candidates:
        raise ForecastInputError(f"unknown candidates {unknown}; choose from {sorted(CANDIDATES)}")
    series, freq = regularize(df)
    if season is not None:
        freq = Frequency(freq.code, season, freq.name)
    holdout = holdout or _default_holdout(horizon, freq)
    min_train = 2 * freq.season
    folds = max(1, min(folds, (len(series) - min_train) // holdout))
    if len(series) < min_train + holdout:
        raise ForecastInputError(
            f"need at least {min_train + holdout} {freq.name} observations "
            f"({min_train} to train, {holdout} to test), got {len(series)}"
        )
    names = list(dict.fromkeys([BASELINE, *candidates]))
    table, residuals, failures = backtest(series, freq, names, holdout, folds)
    if table.empty:
        raise ForecastInputError(f"every candidate failed: {failures}")
    summary = summarize(table)
    best = str(summary.iloc[0]["candidate"])
    point = CANDIDATES[best](series, horizon, freq)
    lo_q, hi_q = np.quantile(residuals[best], [(1 - interval) / 2, 1 - (1 - interval) / 2])
    lower, upper = point + lo_q, point + hi_q
    if (series >= 0).all():
        # Revenue cannot go negative; clip only when the history agrees.
        point, lower = np.maximum(point, 0.0), np.maximum(lower, 0.0)
    future = pd.date_range(series.index[-1], periods=horizon + 1, freq=freq.code)[1:]
    forecast = pd.DataFrame(
        {"ds": future, "yhat": point, "yhat_lower": lower, "yhat_upper": upper, "model": best}
    )
    chosen = summary.set_index("candidate")
    last_fold = table[(table["fold"] == table["fold"].max())].set_index("candidate")
    metrics = {
        "holdout_days": float(holdout) if freq is DAILY else float(holdout * 30),
        "holdout_periods": float(holdout),
        "folds": float(folds),
        "holdout_mae": float(chosen.loc[best, "mae"]),
        "holdout_smape": float(chosen.loc[best, "smape"]),
        "holdout_mase": float(chosen.loc[best, "mase"]),
        "baseline_smape": float(chosen.loc[BASELINE, "smape"])
        if BASELINE in chosen.index
        else np.nan,
        "baseline_mase": float(chosen.loc[BASELINE, "mase"])
        if BASELINE in chosen.index
        else np.nan,
        "last_fold_smape": float(last_fold.loc[best, "smape"]),
        "interval_width_mean": float(np.mean(upper - lower)),
    }
    return ForecastResult(
        forecast=forecast,
        metrics=metrics,
        model=best,
        backtest=table,
        summary=summary,
        frequency=freq.name,
        failures=failures,
    )


__all__ = [
    "DAILY",
    "MONTHLY",
    "ForecastInputError",
    "ForecastResult",
    "backtest",
    "fit_forecast",
    "holdout_predictions",
    "mase",
    "seasonal_naive",
    "smape",
    "summarize",
]


def holdout_predictions(
    df: pd.DataFrame, model: str, holdout: int, season: int | None = None
) -> pd.DataFrame:
    """``ds, y, yhat`` of ``model`` fit without the last ``holdout`` periods: the
    forecast-against-actuals picture of data the model did not see."""
    if model not in CANDIDATES:
        raise ForecastInputError(f"unknown model {model!r}; choose from {sorted(CANDIDATES)}")
    series, freq = regularize(df)
    if season is not None:
        freq = Frequency(freq.code, season, freq.name)
    if holdout <= 0 or len(series) <= holdout + freq.season:
        raise ForecastInputError(
            f"need more than {holdout + freq.season} periods, got {len(series)}"
        )
    train, test = series.iloc[:-holdout], series.iloc[-holdout:]
    pred = CANDIDATES[model](train, holdout, freq)
    return pd.DataFrame({"ds": test.index, "y": test.to_numpy(), "yhat": pred})
