"""Anomaly features (no look-ahead), detector quality on injected fraud, daily anomalies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from ml.anomaly import (
    TransactionInputError,
    daily_anomalies,
    fit_detector,
    precision_at_k,
    transaction_features,
)
from ml.synthetic import transactions


@pytest.fixture(scope="module")
def train_tx() -> pd.DataFrame:
    return transactions(n_customers=2_000, days=180, seed=11, fraud_share=0.015)


@pytest.fixture(scope="module")
def fresh_tx() -> pd.DataFrame:
    return transactions(n_customers=2_000, days=180, seed=12, fraud_share=0.015)


def _tiny() -> pd.DataFrame:
    t0 = pd.Timestamp("2025-03-01 06:00", tz="UTC")
    rows = [
        ("t1", "c1", "i1", 1000, t0),
        ("t2", "c1", "i1", 2000, t0 + pd.Timedelta(hours=2)),
        ("t3", "c1", "i2", 3000, t0 + pd.Timedelta(hours=2)),  # same instant as t2
        ("t4", "c1", "i2", 4000, t0 + pd.Timedelta(days=3)),
        ("t5", "c2", "i2", 500, t0 + pd.Timedelta(days=3, hours=1)),
        ("t6", "c1", "i1", 100, t0 + pd.Timedelta(days=40)),
    ]
    return pd.DataFrame(
        rows, columns=["transaction_id", "customer_id", "instrument_id", "amount", "created_at"]
    )


def test_velocity_counts_only_the_strict_past() -> None:
    f = transaction_features(_tiny()).set_index("transaction_id")
    assert f.loc["t1", "cust_count_1d"] == 0
    assert f.loc["t2", "cust_count_1d"] == 1 and f.loc["t3", "cust_count_1d"] == 1
    assert f.loc["t4", "cust_count_1d"] == 0 and f.loc["t4", "cust_count_7d"] == 3
    assert f.loc["t6", "cust_count_30d"] == 0 and f.loc["t6", "cust_past_txns"] == 4
    assert f.loc["t4", "cust_log_sum_7d"] == pytest.approx(np.log1p(6000))
    assert f.loc["t5", "inst_count_7d"] == 2  # i2 used by c1 twice before
    assert f.loc["t4", "amount_vs_cust_mean"] == pytest.approx(4000 / 2000)
    assert f.loc["t3", "new_instrument"] == 0  # customer known for < 1 day
    assert f.loc["t6", "new_instrument"] == 0  # i1 is old for c1
    assert f.loc["t1", "hour"] == pytest.approx(11.5)  # 06:00 UTC is 11:30 IST


def test_features_do_not_leak_future_rows(train_tx: pd.DataFrame) -> None:
    cutoff = train_tx["created_at"].quantile(0.6)
    past = train_tx[train_tx["created_at"] < cutoff]
    future = train_tx[train_tx["created_at"] >= cutoff].copy()
    future["amount"] = future["amount"] * 50  # hostile future: must not move past features
    alone = transaction_features(past).set_index("transaction_id")
    with_future = transaction_features(pd.concat([past, future])).set_index("transaction_id")
    pd.testing.assert_frame_equal(alone, with_future.loc[alone.index])


def test_unsupervised_detector_finds_injected_fraud_on_unseen_data(
    train_tx: pd.DataFrame, fresh_tx: pd.DataFrame
) -> None:
    detector = fit_detector(train_tx.drop(columns=["label"]))
    assert detector.method == "robust_z" and detector.evaluation.empty
    scored = detector.score(fresh_tx.drop(columns=["label"]))
    labels = fresh_tx.set_index("transaction_id").loc[scored["transaction_id"], "label"].to_numpy()
    assert list(scored.columns) == ["transaction_id", "score", "top_reasons"]
    assert roc_auc_score(labels, scored["score"]) >= 0.90
    assert precision_at_k(labels, scored["score"].to_numpy(), 100) >= 0.5
    top = scored.nlargest(100, "score")
    assert (top["top_reasons"] != "").all()
    reasons = " ".join(top["top_reasons"])
    for expected in ("cust_count_1d", "new_instrument", "amount_vs_"):
        assert expected in reasons
    # An ordinary daytime plan charge has nothing unusual to report.
    bottom = scored.nsmallest(100, "score")
    assert (bottom["top_reasons"] == "").mean() > 0.5


def test_supervised_is_compared_on_a_later_window(train_tx: pd.DataFrame) -> None:
    detector = fit_detector(train_tx)
    ev = detector.evaluation.set_index("method")
    assert set(ev.index) == {"baseline_amount_ratio", "robust_z", "supervised_hgb"}
    assert (ev["holdout_start"] > train_tx["created_at"].min()).all()
    holdout_rows = int((train_tx["created_at"] >= ev["holdout_start"].iloc[0]).sum())
    assert ev["rows"].eq(holdout_rows).all() and holdout_rows < len(train_tx)
    best = max(ev.loc["robust_z", "roc_auc"], ev.loc["supervised_hgb", "roc_auc"])
    assert best >= 0.90 and best > ev.loc["baseline_amount_ratio", "roc_auc"]
    since = train_tx["created_at"].iloc[-50]
    recent = detector.score(train_tx, since=since)
    assert len(recent) == int((train_tx["created_at"] >= since).sum())


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.drop(columns=["instrument_id"]), "missing columns"),
        (lambda d: pd.concat([d, d.iloc[[0]]]), "duplicate transaction_id"),
        (lambda d: d.assign(amount=[-1, *d["amount"].iloc[1:]]), "non-negative"),
        (
            lambda d: d.assign(created_at=["not a time", *d["created_at"].iloc[1:]]),
            "not timestamps",
        ),
        (lambda d: d.iloc[0:0], "no transactions"),
    ],
)
def test_bad_transactions_are_rejected(mutate, message: str) -> None:
    with pytest.raises(TransactionInputError, match=message):
        transaction_features(mutate(_tiny()))


def test_labels_without_enough_positives_are_refused() -> None:
    with pytest.raises(TransactionInputError, match="positives"):
        fit_detector(_tiny().assign(label=0))


def test_daily_anomalies_flags_days_outside_the_interval() -> None:
    ds = pd.date_range("2025-01-01", periods=4, freq="D")
    forecast = pd.DataFrame({"ds": ds, "yhat": 100.0, "yhat_lower": 90.0, "yhat_upper": 110.0})
    actuals = pd.DataFrame({"ds": [*ds, ds[0]], "y": [50.0, 100.0, 130.0, 89.0, 45.0]})
    out = daily_anomalies(actuals, forecast)
    assert out["y"].tolist() == [95.0, 100.0, 130.0, 89.0]  # duplicate day summed
    assert out["direction"].tolist() == ["within", "within", "above", "below"]
    assert out["is_anomaly"].tolist() == [False, False, True, True]
    assert out.loc[2, "deviation"] == pytest.approx(1.0)
    with pytest.raises(TransactionInputError, match="forecast needs"):
        daily_anomalies(actuals, forecast.drop(columns=["yhat_upper"]))
