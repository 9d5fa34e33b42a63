"""Churn model: time-based holdout comparison, calibration, explanations, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.churn import fit_churn_model
from ml.classify import TrainingInputError, lift_at
from ml.synthetic import customer_features


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return customer_features(5_000, seed=21)


@pytest.fixture(scope="module")
def model(table: pd.DataFrame):
    return fit_churn_model(table, "churned_30d", time_col="snapshot_date")


def test_churn_model_beats_heuristic_on_later_snapshots(table: pd.DataFrame, model) -> None:
    cmp = model.comparison.set_index("model")
    assert set(cmp.index) == {"chosen_calibrated", "logistic_regression", "recency_frequency"}
    assert set(cmp.columns) >= {"roc_auc", "pr_auc", "brier", "lift_at_10pct"}
    cutoff = pd.Timestamp(model.holdout.split(">= ")[1]).tz_localize(None)
    assert cmp["rows"].iloc[0] == (table["snapshot_date"] >= cutoff).sum()
    assert "customer_id" not in model.features and "snapshot_date" not in model.features
    assert cmp.loc["chosen_calibrated", "roc_auc"] > cmp.loc["recency_frequency", "roc_auc"]
    assert cmp.loc["chosen_calibrated", "roc_auc"] > 0.7
    assert cmp.loc["chosen_calibrated", "lift_at_10pct"] > 2.0
    base_rate = cmp.loc["chosen_calibrated", "positive_rate"]
    assert cmp.loc["chosen_calibrated", "brier"] < base_rate * (1 - base_rate)  # beats a constant
    probs = model.predict_proba(table.head(50))
    assert probs.shape == (50,) and ((probs >= 0) & (probs <= 1)).all()


def test_explain_names_the_drivers(table: pd.DataFrame, model) -> None:
    risky = table.head(40).copy()
    risky["failed_payments_30d"] = 3
    risky["usage_events_30d"] = 1
    out = model.explain(risky)
    assert list(out.columns) == ["customer_id", "churn_probability", "top_reasons"]
    assert out["top_reasons"].str.contains("failed_payments_30d|usage_events_30d").mean() > 0.8
    assert (out["churn_probability"] > model.predict_proba(table.head(40))).mean() > 0.8


def test_lift_and_bad_input(table: pd.DataFrame) -> None:
    labels = np.array([1, 0, 0, 0, 0, 0, 0, 0, 0, 1])
    assert lift_at(labels, np.arange(10)[::-1].astype(float), 0.1) == pytest.approx(5.0)
    with pytest.raises(TrainingInputError, match="label column"):
        fit_churn_model(table, "nope", "snapshot_date")
    with pytest.raises(TrainingInputError, match="0/1"):
        fit_churn_model(table.assign(churned_30d=2), "churned_30d", "snapshot_date")
    with pytest.raises(TrainingInputError, match="time column"):
        fit_churn_model(table, "churned_30d", "missing_col")
    with pytest.raises(TrainingInputError, match="churners"):
        fit_churn_model(table.assign(churned_30d=0), "churned_30d", "snapshot_date")
    model = fit_churn_model(table, "churned_30d", "snapshot_date", features=["tenure_days"])
    with pytest.raises(TrainingInputError, match="missing feature"):
        model.predict_proba(table.drop(columns=["tenure_days"]))
