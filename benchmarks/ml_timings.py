"""ML timings on seeded synthetic data: Prophet fit + 90-day forecast on 3 years of daily
data, anomaly scoring of ~1 million transactions, churn training on 100,000 customers.

Run: ``.venv/bin/python benchmarks/ml_timings.py [--transactions-customers N]``. Each figure is
printed next to a simple baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ml.anomaly import fit_detector, precision_at_k
from ml.churn import fit_churn_model
from ml.forecast.candidates import ets, prophet, seasonal_naive
from ml.forecast.series import regularize
from ml.synthetic import customer_features, daily_revenue, transactions


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def forecast_bench() -> None:
    series, freq = regularize(daily_revenue(days=3 * 365, seed=7))
    _, t_prophet = timed(lambda: prophet(series, 90, freq))
    _, t_ets = timed(lambda: ets(series, 90, freq))
    _, t_naive = timed(lambda: seasonal_naive(series, 90, freq))
    print(f"forecast: {len(series)} daily points, horizon 90")
    print(f"  prophet fit+forecast      {t_prophet:8.2f} s")
    print(f"  ets fit+forecast          {t_ets:8.2f} s   (baseline)")
    print(f"  seasonal naive            {t_naive:8.4f} s   (baseline)")


def anomaly_bench(customers: int) -> None:
    tx, t_gen = timed(lambda: transactions(n_customers=customers, days=365, seed=8))
    print(
        f"anomaly: {len(tx):,} transactions ({customers:,} customers), generated in {t_gen:.1f} s"
    )
    unlabeled = tx.drop(columns=["label"])
    detector, t_fit = timed(lambda: fit_detector(unlabeled))
    scored, t_score = timed(lambda: detector.score(unlabeled))
    # Baseline: the one-line rule "amount over plan price", vectorized pandas.
    _, t_rule = timed(lambda: (tx["amount"] / tx["plan_amount"]).rank(ascending=False))
    labels = tx.set_index("transaction_id").loc[scored["transaction_id"], "label"].to_numpy()
    from sklearn.metrics import roc_auc_score

    auc = roc_auc_score(labels, scored["score"])
    p100 = precision_at_k(labels, scored["score"].to_numpy(), 100)
    rule = (tx["amount"] / tx["plan_amount"]).to_numpy()
    print(f"  fit (robust stats)        {t_fit:8.2f} s")
    print(f"  score incl. features      {t_score:8.2f} s   ({len(tx) / t_score:,.0f} tx/s)")
    print(f"  amount/plan rule          {t_rule:8.2f} s   (baseline)")
    print(
        f"  quality: ROC-AUC {auc:.3f}, precision@100 {p100:.2f}; rule ROC-AUC "
        f"{roc_auc_score(labels, rule):.3f}"
    )


def churn_bench(n: int) -> None:
    table = customer_features(n, seed=9)
    model, t_fit = timed(lambda: fit_churn_model(table, "churned_30d", time_col="snapshot_date"))
    print(f"churn: {n:,} customers, time-based holdout {model.holdout}")
    print(f"  train (hgb+calibration+logreg) {t_fit:8.2f} s")
    _, t_pred = timed(lambda: model.predict_proba(table))
    print(f"  predict all rows               {t_pred:8.2f} s")
    cols = ["model", "roc_auc", "pr_auc", "brier", "lift_at_10pct"]
    print(model.comparison[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--transactions-customers", type=int, default=52_000)
    parser.add_argument("--churn-customers", type=int, default=100_000)
    parser.add_argument(
        "--threads", type=int, default=None, help="cap BLAS/OpenMP threads (shared boxes: 1)"
    )
    parser.add_argument("--skip", nargs="*", default=[], choices=["forecast", "anomaly", "churn"])
    args = parser.parse_args()
    np.seterr(all="ignore")
    pd.set_option("display.width", 160)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=args.threads):
        print(f"threads: {args.threads or 'library default'}")
        if "forecast" not in args.skip:
            forecast_bench()
        if "anomaly" not in args.skip:
            anomaly_bench(args.transactions_customers)
        if "churn" not in args.skip:
            churn_bench(args.churn_customers)


if __name__ == "__main__":
    main()
