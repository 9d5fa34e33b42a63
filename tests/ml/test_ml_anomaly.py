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
    assert f.loc["t5", "instrument_count_last_1d"] == 1  # t4 used i2 an hour before
    assert f.loc["t5", "cust_count_1d"] == 0
    assert f.loc["t4", "cust_mean_amount_7d"] == pytest.approx((1000 + 2000 + 3000 + 4000) / 4)
    assert f.loc["t4", "amount_vs_cust_mean"] == pytest.approx(4000 / 2000)
    assert f.loc["t3", "new_instrument"] == 0  # customer known for < 1 day
    assert f.loc["t6", "new_instrument"] == 0  # i1 is old for c1
    assert f.loc["t1", "hour"] == pytest.approx(11.5)  # 06:00 UTC is 11:30 IST


def _with_terminals(tx: pd.DataFrame) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return tx.assign(terminal_id=rng.integers(0, 40, len(tx)).astype(str))


def test_features_do_not_leak_future_rows(train_tx: pd.DataFrame) -> None:
    tx = _with_terminals(train_tx)
    cutoff = tx["created_at"].quantile(0.6)
    past = tx[tx["created_at"] < cutoff]
    future = tx[tx["created_at"] >= cutoff].copy()
    future["amount"] = future["amount"] * 50  # hostile future: must not move past features
    future["label"] = 1 - future["label"]
    alone = transaction_features(past, "label").set_index("transaction_id")
    with_future = transaction_features(pd.concat([past, future]), "label")
    pd.testing.assert_frame_equal(alone, with_future.set_index("transaction_id").loc[alone.index])


def test_entity_fraud_counts_use_only_labels_older_than_the_delay() -> None:
    t0 = pd.Timestamp("2025-03-01 06:00", tz="UTC")
    days = [0, 1, 2, 6, 8, 8.5, 20]
    frame = pd.DataFrame(
        {
            "transaction_id": [f"t{i}" for i in range(len(days))],
            "customer_id": [f"c{i}" for i in range(len(days))],
            "terminal_id": "T1",
            "amount": 1000,
            "created_at": [t0 + pd.Timedelta(days=d) for d in days],
            "label": [1, 1, 0, 1, 0, 1, 0],
        }
    )
    f = transaction_features(frame, "label", pd.Timedelta(days=7)).set_index("transaction_id")
    # At day 8 only the labels of days < 1 are known (t0): one fraud of one transaction.
    assert f.loc["t4", "terminal_frauds_7d"] == 1 and f.loc["t4", "terminal_count_7d"] == 1
    assert f.loc["t4", "terminal_risk_7d"] == 1.0
    # At day 8.5 the day-1 fraud is known too, not the day-6 one.
    assert f.loc["t5", "terminal_frauds_7d"] == 2
    assert f.loc["t3", "terminal_frauds_30d"] == 0  # at day 6 no label is 7 days old yet
    # Day 20: the window [day 6, day 13) holds t3 (fraud), t4 and t5 (its own label is new).
    assert f.loc["t6", "terminal_count_7d"] == 3 and f.loc["t6", "terminal_frauds_7d"] == 2
    # Changing every label younger than the delay changes nothing at any row.
    for row in f.index:
        at = frame.set_index("transaction_id").loc[row, "created_at"]
        flipped = frame.copy()
        young = flipped["created_at"] > at - pd.Timedelta(days=7)
        flipped.loc[young, "label"] = 1 - flipped.loc[young, "label"]
        g = transaction_features(flipped, "label", pd.Timedelta(days=7)).set_index("transaction_id")
        pd.testing.assert_series_equal(f.loc[row], g.loc[row])


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


def test_supervised_is_trained_before_the_delay_and_judged_after_it(
    train_tx: pd.DataFrame, fresh_tx: pd.DataFrame
) -> None:
    tx = _with_terminals(train_tx)
    detector = fit_detector(tx, label_delay="7D")
    ev = detector.evaluation.set_index("method")
    assert set(ev.index) == {
        "baseline", "random_forest", "gradient_boosting", "extra_trees", "average", "robust_z"
    }  # fmt: skip
    start = ev["holdout_start"].iloc[0]
    test_rows = int((tx["created_at"] >= start).sum())
    assert ev["rows"].eq(test_rows).all() and test_rows < len(tx)
    assert ev["chosen"].sum() == 1 and detector.method == ev.index[ev["chosen"]][0]
    chosen = ev.loc[detector.method]
    assert chosen["roc_auc"] >= 0.95 and chosen["pr_auc"] > ev.loc["baseline", "pr_auc"]
    assert detector.metrics["label_delay_days"] == 7.0
    # Scoring unseen data of the same kind, with the labels known so far.
    fresh = _with_terminals(fresh_tx)
    scored = detector.score(fresh).set_index("transaction_id")
    labels = fresh.set_index("transaction_id").loc[scored.index, "label"]
    assert roc_auc_score(labels, scored["score"]) >= 0.95
    since = tx["created_at"].iloc[-50]
    recent = detector.score(tx, since=since)
    assert len(recent) == int((tx["created_at"] >= since).sum())


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.drop(columns=["amount"]), "missing columns"),
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
