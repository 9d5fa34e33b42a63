"""The warehouse's revenue series and their forecasts: daily net revenue and monthly MRR,
fitted together, logged to the active MLflow run, with the per-series check numbers."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from ml import plots, registry
from ml.forecast.series import ForecastInputError
from ml.forecast.train import fit_forecast, holdout_predictions

DAILY_REVENUE_SQL = """
select cast(created_at as date) as ds, sum(amount_minor - fee_minor - fee_tax_minor) as y
from marts.fct_payments
where status = 'succeeded' and currency = ?
group by 1 order by 1
"""
MRR_SQL = """
select month as ds, mrr_minor as y from marts.mrr_monthly
where currency = ? and active_customers > 0 order by 1
"""
COLUMNS = ["series", "ds", "yhat", "yhat_lower", "yhat_upper", "model", "currency"]


def daily_history(history: pd.DataFrame) -> pd.DataFrame:
    """Days without a successful payment are zero-revenue days, not missing ones."""
    if history.empty:
        return history
    return (
        history.assign(ds=pd.to_datetime(history["ds"]))
        .set_index("ds")
        .asfreq("D", fill_value=0)
        .reset_index()
    )


@dataclass
class RevenueForecasts:
    forecast: pd.DataFrame
    summary: pd.DataFrame
    metrics: dict[str, float]
    models: dict[str, str]
    plots: dict[str, bytes] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def worst_vs_baseline(self) -> tuple[str, float, float]:
        """The series whose chosen model is furthest behind (or least ahead of) seasonal
        naive by backtest MASE: the one the check judges."""
        rows = [
            (n, self.metrics[f"{n}_holdout_mase"], self.metrics[f"{n}_baseline_mase"])
            for n in self.models
        ]
        return max(rows, key=lambda r: r[1] - r[2])


def fit_revenue(
    daily: pd.DataFrame,
    mrr: pd.DataFrame,
    horizon_days: int,
    horizon_months: int,
    candidates: Sequence[str],
    currency: str,
) -> RevenueForecasts:
    """Fit both series; a series too short to forecast is skipped with the reason."""
    outputs, summaries, metrics, models, pngs, skipped = [], [], {}, {}, {}, {}
    for name, history, horizon, season in (
        ("daily_net_revenue", daily, horizon_days, None),
        # A year of months has no second season to learn from: compare with naive then.
        ("monthly_mrr", mrr, horizon_months, 12 if len(mrr) >= 30 else 1),
    ):
        try:
            result = fit_forecast(history, horizon=horizon, season=season, candidates=candidates)
        except ForecastInputError as exc:
            skipped[name] = str(exc)
            continue
        outputs.append(result.forecast.assign(series=name))
        summaries.append(
            result.summary.assign(series=name, chosen=result.summary["candidate"] == result.model)
        )
        metrics |= {f"{name}_{k}": float(v) for k, v in result.metrics.items()}
        models[name] = result.model
        seen = None
        # Too short to hold out a window: the backtest table still says it all.
        with contextlib.suppress(ForecastInputError):
            seen = holdout_predictions(
                history, result.model, int(result.metrics["holdout_periods"]), season=season
            )
        pngs[name] = plots.forecast_png(
            history, result.forecast, f"{name}: {result.model} (dashed: fit without them)", seen
        )
    if not outputs:
        raise ForecastInputError(f"no revenue series could be forecast: {skipped}")
    forecast = pd.concat(outputs, ignore_index=True).assign(currency=currency)[COLUMNS]
    summary = pd.concat(summaries, ignore_index=True)
    return RevenueForecasts(forecast, summary, metrics, models, pngs, skipped)


def log_revenue(result: RevenueForecasts, params: dict[str, object]) -> None:
    """Params, metrics, the backtest summary and the forecast into the active MLflow run."""
    registry.log_params({f"model_{k}": v for k, v in result.models.items()} | params)
    registry.log_metrics(result.metrics)
    registry.log_table(result.summary, "backtest_summary.csv")
    forecast = result.forecast.assign(ds=result.forecast["ds"].astype(str))
    registry.log_table(forecast, "forecast.csv")
