"""Retry-timing model: holdout comparison, salary-day and outage timing, scorer contract."""

from __future__ import annotations

import pandas as pd
import pytest

from ml.classify import TrainingInputError
from ml.retry import RetryModel, fit_retry_model
from ml.synthetic import retry_attempts

BASE = {
    "decline_code": "insufficient_funds",
    "method": "card",
    "issuer": "HDFC",
    "amount_minor": 49_900,
    "day_of_month": 20,
    "hour": 10,
    "attempt_number": 1,
}


@pytest.fixture(scope="module")
def model() -> RetryModel:
    return fit_retry_model(retry_attempts(12_000, seed=31))


def test_model_beats_decline_code_baseline_on_later_failures(model: RetryModel) -> None:
    cmp = model.comparison.set_index("model")
    assert cmp.loc["hgb", "roc_auc"] > cmp.loc["decline_code_rate", "roc_auc"] + 0.03
    assert cmp.loc["hgb", "brier"] < cmp.loc["decline_code_rate", "brier"]
    assert model.holdout.startswith("failed_at >= ")


def test_best_offset_follows_salary_days_and_outages(model: RetryModel) -> None:
    offset, prob = model.best_offset(BASE, [1, 24, 72, 24 * 9])
    assert offset == 24 * 9  # lands on the 29th: salary credited
    assert 0 < prob < 1
    outage = {**BASE, "decline_code": "issuer_unavailable"}
    assert model.best_offset(outage, [0.25, 6])[0] == 6
    scorer = model.as_scorer()
    assert scorer({**BASE, "decline_code": "expired_card"}, 24) < 0.05
    assert scorer(BASE, 24 * 9) == pytest.approx(prob)
    # Unknown categories (a new issuer) still score instead of crashing a billing run.
    assert 0 <= scorer({**BASE, "issuer": "NEWBANK"}, 24) <= 1


def test_bad_input(model: RetryModel) -> None:
    with pytest.raises(TrainingInputError, match="missing columns"):
        model.predict_success(pd.DataFrame([{"offset_hours": 1}]))
    with pytest.raises(TrainingInputError, match="offset_hours must be"):
        model.as_scorer()(BASE, -1)
    with pytest.raises(TrainingInputError, match=r"hour 0\.\.23"):
        model.as_scorer()({**BASE, "hour": 25}, 1)
    with pytest.raises(TrainingInputError, match="empty"):
        model.best_offset(BASE, [])
    with pytest.raises(TrainingInputError, match="0/1"):
        fit_retry_model(retry_attempts(200, seed=1).assign(succeeded="yes"))
