"""ML assets materialized in-process against a temporary DuckDB warehouse and MLflow sqlite store.

The marts they read are written directly from seeded synthetic generators (shaped like the dbt
marts), so the test exercises the Dagster wiring, MLflow registration and promotion, the
baseline checks, the scoring tables and the drift sensor in well under two minutes."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import mlflow
import numpy as np
import pandas as pd
import pytest

from ml.synthetic import customer_features, retry_attempts, transactions
from orchestration.defs.ml import assets, scores, sensors
from orchestration.lib.resources import MlflowResource, WarehouseResource

TRAINING = [
    assets.revenue_forecast,
    assets.churn_model,
    assets.transaction_anomaly_model,
    assets.retry_timing_model,
]
SCORING = [scores.churn_scores, scores.transaction_anomaly_scores]
# ~35 s idle; 2-3 min on the loaded 2-core box where it was written.
pytestmark = pytest.mark.slow
FAST_FORECAST = {"ops": {"revenue_forecast": {"config": {"candidates": ["seasonal_naive", "ets"]}}}}


def _panel() -> pd.DataFrame:
    panel = customer_features(3_000, seed=5, months=10)
    panel = panel.rename(
        columns={"snapshot_date": "snapshot_at", "churned_30d": "churned_in_horizon"}
    )
    panel["snapshot_at"] = pd.to_datetime(panel["snapshot_at"])
    panel["open_invoices"] = (panel["failed_payments_30d"] > 0).astype(int)
    panel["label_horizon_days"] = 30
    return panel


def _marts(path: Path) -> dict[str, pd.DataFrame]:
    tx = transactions(n_customers=100, days=120, seed=3, fraud_share=0.1)
    rng = np.random.default_rng(1)
    status = np.where(rng.random(len(tx)) < 0.1, "failed", "succeeded")
    fct_payments = pd.DataFrame(
        {
            "created_at": tx["created_at"].dt.tz_localize(None),
            "amount_minor": tx["amount"].astype("int64"),
            "fee_minor": (tx["amount"] * 0.02).astype("int64"),
            "fee_tax_minor": (tx["amount"] * 0.0036).astype("int64"),
            "status": status,
            "currency": "INR",
            "invoice_id": np.where(tx["label"] == 1, None, 1),
        }
    )
    ml_transactions = pd.DataFrame(
        {
            "transaction_id": tx["transaction_id"].astype(str),
            "customer_id": tx["customer_id"].astype(str),
            "instrument_id": tx["instrument_id"].astype(str),
            "amount_minor": tx["amount"].astype("int64"),
            "currency": "INR",
            "status": status,
            "created_at": tx["created_at"].dt.tz_localize(None),
            "plan_amount_minor": tx["plan_amount"].astype("int64"),
            "fraud_disputed": tx["label"].astype(int),
        }
    )
    months = pd.date_range("2025-01-01", periods=14, freq="MS")
    mrr = pd.DataFrame(
        {
            "month": months.date,
            "currency": "INR",
            "mrr_minor": (1_000_000 * 1.03 ** np.arange(14)).astype("int64"),
            "active_customers": 100,
        }
    )
    panel = _panel()
    current = panel[panel["snapshot_at"] == panel["snapshot_at"].max()].drop(
        columns=["churned_in_horizon"]
    )
    retry = retry_attempts(1_500, seed=4)
    retry["failed_at"] = retry["failed_at"].dt.tz_localize(None)
    tables = {
        "fct_payments": fct_payments,
        "mrr_monthly": mrr,
        "customer_features_monthly": panel,
        "customer_features": current,
        "ml_transactions": ml_transactions,
        "retry_outcomes": retry,
    }
    con = duckdb.connect(str(path))
    con.execute("create schema if not exists marts")
    for name, frame in tables.items():
        con.register("_f", frame)
        con.execute(f"create or replace table marts.{name} as select * from _f")
        con.unregister("_f")
    con.close()
    return tables


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("mlassets")
    db = tmp / "warehouse.duckdb"
    tables = _marts(db)
    resources = {
        "warehouse": WarehouseResource(path=str(db)),
        "mlflow": MlflowResource(
            tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}", artifacts_dir=str(tmp / "artifacts")
        ),
    }
    result = dg.materialize(
        TRAINING + SCORING, resources=resources, run_config=FAST_FORECAST, raise_on_error=False
    )
    return result, resources, tables, db


def _query(db: Path, sql: str) -> pd.DataFrame:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).df()
    finally:
        con.close()


def test_training_and_scoring_assets_materialize(world):
    result, _, tables, db = world
    assert result.success
    keys = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert keys == {a.key.to_user_string() for a in TRAINING + SCORING}
    forecast = _query(db, "select * from ml.revenue_forecast")
    assert set(forecast["series"]) == {"daily_net_revenue", "monthly_mrr"}
    assert (
        forecast.groupby("series").size() == pd.Series({"daily_net_revenue": 28, "monthly_mrr": 3})
    ).all()
    assert (forecast["yhat_lower"] <= forecast["yhat_upper"]).all()

    churn = _query(db, "select * from ml.churn_scores")
    assert len(churn) == len(tables["customer_features"])
    assert churn["churn_probability"].between(0, 1).all()
    assert churn["risk_band"].isin(["low", "medium", "high"]).all()
    riskiest = churn.iloc[0]
    assert riskiest["churn_probability"] == churn["churn_probability"].max()
    assert riskiest["top_reasons"]

    anomalies = _query(db, "select * from ml.transaction_anomaly_scores order by rank")
    assert len(anomalies) == len(tables["ml_transactions"])
    assert anomalies["is_flagged"].sum() == 100
    labels = tables["ml_transactions"].set_index("transaction_id")["fraud_disputed"]
    # The injected fraud ranks high: as many top-ranked transactions as there are frauds are
    # mostly fraud.
    top = anomalies.head(int(labels.sum()))["transaction_id"]
    assert labels.loc[top].mean() > 0.5
    daily = _query(db, "select * from ml.daily_anomalies")
    assert set(daily["metric"]) == {"net_revenue_minor", "payment_failure_rate"}


def test_every_model_is_checked_against_its_baseline(world):
    result, *_ = world
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(checks) == {
        "revenue_forecast_beats_seasonal_naive",
        "churn_model_beats_baseline",
        "churn_model_beats_logistic_regression",
        "transaction_anomaly_model_beats_baseline",
        "retry_timing_model_beats_baseline",
    }
    for name in (
        "churn_model_beats_baseline",
        "transaction_anomaly_model_beats_baseline",
        "retry_timing_model_beats_baseline",
    ):
        assert checks[name].passed, (name, checks[name].description)
        assert checks[name].severity == dg.AssetCheckSeverity.ERROR


def test_models_are_registered_with_runs_and_load_by_alias(world):
    result, resources, tables, _ = world
    resources["mlflow"].setup()
    mats = {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    for asset_name in ("churn_model", "transaction_anomaly_model", "retry_timing_model"):
        meta = mats[asset_name]
        assert meta["promoted"].value is True
        run = mlflow.get_run(meta["mlflow_run_id"].value)
        assert run.data.tags["dagster_asset"] == asset_name
        assert run.data.metrics
    assert "data:image/png;base64," in mats["churn_model"]["roc_pr"].value
    assert "data:image/png;base64," in mats["revenue_forecast"]["plot_daily_net_revenue"].value
    model = mlflow.pyfunc.load_model("models:/churn@champion")
    out = model.predict(tables["customer_features"])
    assert out["customer_id"].tolist() == tables["customer_features"]["customer_id"].tolist()
    probs = out["churn_probability"].to_numpy(dtype=float)
    assert len(probs) == len(tables["customer_features"]) and np.all((probs >= 0) & (probs <= 1))


def test_worse_challenger_fails_its_check_and_is_not_promoted(world):
    _, resources, tables, db = world
    panel = tables["customer_features_monthly"].copy()
    # Scramble the labels of the training window only: the challenger learns nothing, while
    # the holdout (and so the champion's re-scored number) stays informative.
    cutoff = panel["snapshot_at"].quantile(0.75)
    early = panel["snapshot_at"] < cutoff
    rng = np.random.default_rng(0)
    panel.loc[early, "churned_in_horizon"] = rng.permutation(
        panel.loc[early, "churned_in_horizon"].to_numpy()
    )
    con = duckdb.connect(str(db))
    con.register("_f", panel)
    con.execute("create or replace table marts.customer_features_monthly as select * from _f")
    con.close()
    result = dg.materialize([assets.churn_model], resources=resources, raise_on_error=False)
    assert result.success
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["promoted"].value is False
    reason = meta["promotion_reason"].value
    assert "does not beat champion" in reason or "does not beat its baseline" in reason
    check = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert check["churn_model_beats_baseline"].passed is False


def test_drift_sensor_requests_training_only_on_drift(world):
    _, resources, tables, db = world
    warehouse = resources["warehouse"]
    calm = sensors.drift_decision(warehouse)
    assert isinstance(calm, dg.SkipReason), calm
    current = tables["customer_features"].copy()
    current["mrr_minor"] = current["mrr_minor"] * 20  # a different customer base
    con = duckdb.connect(str(db))
    con.register("_f", current)
    con.execute("create or replace table marts.customer_features as select * from _f")
    con.close()
    context = dg.build_sensor_context(resources={"warehouse": warehouse})
    request = sensors.churn_feature_drift_sensor(context)
    assert isinstance(request, dg.RunRequest)
    assert request.tags["paysight/drift_feature"] == "mrr_minor"
    assert request.run_key.startswith("churn-drift-")
