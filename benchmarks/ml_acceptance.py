"""ML acceptance on the demo world (issue #7): forecast MASE against seasonal naive, anomaly
ROC-AUC and precision@100 against the injected fraud, churn ROC-AUC on the future window
against logistic regression and the heuristic. Each model is compared with its baseline in
the same run. Only this evaluation reads ``sim_truth``; the models read the marts alone.

Run after ``paysight demo`` (default warehouse ``data/warehouse.duckdb``) or let it build the
world in a temporary directory: ``.venv/bin/python benchmarks/ml_acceptance.py --build``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from ingestion.warehouse import connect
from ml.anomaly import fit_detector, precision_at_k
from ml.anomaly.registry import DEFAULT_LABEL_DELAY_DAYS, fit_transactions
from ml.churn import panel as churn_panel
from ml.churn import recency_frequency_score
from ml.classify import time_split
from ml.forecast import fit_forecast

GOALS = {"forecast_mase": 1.0, "anomaly_roc_auc": 0.90, "anomaly_p100": 0.5, "churn_roc_auc": 0.80}


def build_world(customers: int, months: int, seed: int) -> Path:
    """Run the whole demo (simulation, ingestion, dbt, ML) into a temporary data dir."""
    tmp = Path(tempfile.mkdtemp(prefix="ml_acceptance_"))
    os.environ["PAYSIGHT_DATA_DIR"] = str(tmp)
    from orchestration.demo import run_demo
    from orchestration.lib.env import Settings

    settings = Settings(data_dir=tmp)
    summary = run_demo(settings, customers=customers, months=months, seed=seed, start="2025-01-01")
    print(f"built the demo world in {tmp} (success={summary['success']})")
    return Path(str(settings.warehouse_path))


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def forecast_section(con: duckdb.DuckDBPyConnection) -> None:
    daily = con.execute(
        """select cast(created_at as date) as ds, sum(amount_minor - fee_minor - fee_tax_minor) y
           from marts.fct_payments where status = 'succeeded' and currency = 'INR'
           group by 1 order by 1"""
    ).df()
    daily = daily.assign(ds=pd.to_datetime(daily["ds"])).set_index("ds").asfreq("D", fill_value=0)
    result = fit_forecast(daily.reset_index(), horizon=28)
    print("\n== Forecast: daily net revenue (INR, minor units), rolling-origin backtest ==")
    print(result.summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    chosen = result.metrics["holdout_mase"]
    naive = result.metrics["baseline_mase"]
    print(
        f"chosen {result.model}: MASE {chosen:.3f} (seasonal naive {naive:.3f}); "
        f"goal MASE < {GOALS['forecast_mase']}: {verdict(chosen < GOALS['forecast_mase'])}; "
        f"beats seasonal naive: {verdict(chosen < naive)}"
    )


def anomaly_section(con: duckdb.DuckDBPyConnection) -> None:
    tx = con.execute("select * from marts.ml_transactions order by created_at").df()
    fraud = set(
        con.execute("select gateway_payment_id from sim_truth.fraud_transactions").df()[
            "gateway_payment_id"
        ]
    )
    frame = tx.rename(columns={"amount_minor": "amount", "plan_amount_minor": "plan_amount"})[
        ["transaction_id", "customer_id", "instrument_id", "amount", "created_at", "plan_amount"]
    ]
    detector = fit_detector(frame)  # unsupervised: the platform has no fraud labels here
    scored = detector.score(frame).set_index("transaction_id").loc[tx["transaction_id"]]
    labels = tx["transaction_id"].str.split(":", n=1).str[1].isin(fraud).astype(int).to_numpy()
    score = scored["score"].to_numpy()
    amount = tx["amount_minor"].to_numpy(dtype=float)
    later = (tx["created_at"] >= tx["created_at"].quantile(0.7)).to_numpy()
    print("\n== Anomalies: transactions against the injected fraud (sim_truth) ==")
    print(f"transactions {len(tx):,}, injected fraud {labels.sum()}")
    rows = []
    for name, s in (("detector (robust z)", score), ("baseline: larger amount", amount)):
        rows.append(
            {
                "scorer": name,
                "roc_auc": roc_auc_score(labels, s),
                "precision_at_100": precision_at_k(labels, s, 100),
                "roc_auc_later_30pct": roc_auc_score(labels[later], s[later])
                if len(np.unique(labels[later])) == 2
                else float("nan"),
            }
        )
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    unlinked = tx["customer_id"].eq("unlinked").to_numpy()
    print(
        f"injected fraud with customer 'unlinked': {int((unlinked & (labels == 1)).sum())} of "
        f"{labels.sum()}; legitimate 'unlinked': {int((unlinked & (labels == 0)).sum())}"
    )
    disputed = tx["fraud_disputed"].astype(int).to_numpy()
    print(
        f"fraud disputes (the platform's label): {disputed.sum()}, of which injected fraud: "
        f"{int((disputed & labels).sum())}"
    )
    # What the training asset measures: the same mart, labelled by disputes, on its window.
    fitted = fit_transactions(tx, DEFAULT_LABEL_DELAY_DAYS)
    if fitted.labelled:
        ev = fitted.detector.evaluation[["method", "roc_auc", "pr_auc", "positives", "rows"]]
        print("the asset's view (labels = fraud disputes, test window after the delay):")
        print(ev.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    else:
        print(f"the asset's view: unsupervised ({fitted.reason})")
    auc, p100 = rows[0]["roc_auc"], rows[0]["precision_at_100"]
    print(
        f"goal ROC-AUC >= {GOALS['anomaly_roc_auc']}: {verdict(auc >= GOALS['anomaly_roc_auc'])}; "
        f"goal precision@100 >= {GOALS['anomaly_p100']}: {verdict(p100 >= GOALS['anomaly_p100'])} "
        f"(at most {min(100, labels.sum()) / 100:.2f} possible)"
    )


def churn_section(con: duckdb.DuckDBPyConnection) -> None:
    panel = con.execute("select * from marts.customer_features_monthly").df()
    truth = con.execute(
        "select customer_id, min(churned_at) as churned_at from sim_truth.churn_events group by 1"
    ).df()
    with threadpool_limits(1):
        model = churn_panel.fit_panel(panel)
    rows = churn_panel.labelled(panel)
    holdout_mask, window = time_split(rows, churn_panel.TIME_COL, 0.25)
    future = rows[holdout_mask].merge(truth, on="customer_id", how="left")
    start = pd.to_datetime(future["snapshot_at"])
    churned = pd.to_datetime(future["churned_at"], utc=True).dt.tz_localize(None)
    truth_label = ((churned >= start) & (churned < start + pd.Timedelta(days=30))).astype(int)
    print("\n== Churn: future window (latest snapshots, never trained on) ==")
    print(f"trained on snapshots before the holdout; holdout {window}, rows {len(future)}")
    print(f"chosen by cross-validation: {model.chosen}")
    print(model.comparison.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    scores = {
        "chosen_calibrated": model.holdout_scores["chosen_calibrated"],
        "logistic_regression": model.holdout_scores["logistic_regression"],
        "recency_frequency": recency_frequency_score(rows[holdout_mask]),
    }
    if truth_label.nunique() == 2:
        print("against sim_truth churn within 30 days of the snapshot:")
        for name, s in scores.items():
            print(f"  {name:20s} ROC-AUC {roc_auc_score(truth_label, s):.3f}")
    by = model.comparison.set_index("model")["roc_auc"]
    auc = by["chosen_calibrated"]
    print(
        f"goal ROC-AUC >= {GOALS['churn_roc_auc']}: {verdict(auc >= GOALS['churn_roc_auc'])} "
        f"({auc:.3f}); above logistic regression ({by['logistic_regression']:.3f}): "
        f"{verdict(auc > by['logistic_regression'])}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--warehouse", default="data/warehouse.duckdb")
    parser.add_argument("--build", action="store_true", help="build the demo world first")
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    path = (
        build_world(args.customers, args.months, args.seed) if args.build else Path(args.warehouse)
    )
    if not path.exists():
        raise SystemExit(f"no warehouse at {path}: run `paysight demo` first or pass --build")
    print(f"load average (under load; compare ratios): {Path('/proc/loadavg').read_text()[:15]}")
    con = connect(path, read_only=True)
    try:
        with threadpool_limits(1):
            forecast_section(con)
            anomaly_section(con)
            churn_section(con)
    finally:
        con.close()


if __name__ == "__main__":
    main()
