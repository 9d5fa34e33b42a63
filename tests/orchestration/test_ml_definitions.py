"""The code location holds the ML assets in group `ml`, their baseline checks, the training and
scoring jobs, the weekly schedule, the drift sensor, and lineage from the dbt marts."""

import dagster as dg
import pytest

ML_ASSETS = {
    "revenue_forecast",
    "churn_model",
    "transaction_anomaly_model",
    "retry_timing_model",
    "churn_scores",
    "transaction_anomaly_scores",
}


@pytest.fixture(scope="module")
def defs():
    from orchestration.definitions import defs

    return defs


def test_ml_assets_are_in_group_ml(defs):
    graph = defs.resolve_asset_graph()
    group = {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert {k for k, g in group.items() if g == "ml"} == ML_ASSETS
    for mart in ("customer_features_monthly", "customer_features", "ml_transactions"):
        assert group[mart] == "marts"


def test_lineage_from_marts_to_models_to_scores(defs):
    graph = defs.resolve_asset_graph()
    parents = {
        k: {p.to_user_string() for p in graph.get(dg.AssetKey(k)).parent_keys} for k in ML_ASSETS
    }
    assert "customer_features_monthly" in parents["churn_model"]
    assert "ml_transactions" in parents["transaction_anomaly_model"]
    assert "retry_outcomes" in parents["retry_timing_model"]
    assert {"fct_payments", "mrr_monthly"} <= parents["revenue_forecast"]
    assert {"churn_model", "customer_features"} <= parents["churn_scores"]
    assert {"transaction_anomaly_model", "ml_transactions"} <= parents["transaction_anomaly_scores"]


def test_every_training_asset_has_a_baseline_check(defs):
    graph = defs.resolve_asset_graph()
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert {
        ("revenue_forecast", "revenue_forecast_beats_seasonal_naive"),
        ("churn_model", "churn_model_beats_baseline"),
        ("churn_model", "churn_model_beats_logistic_regression"),
        ("transaction_anomaly_model", "transaction_anomaly_model_beats_baseline"),
        ("retry_timing_model", "retry_timing_model_beats_baseline"),
    } <= checks


def test_scoring_runs_after_the_marts_and_training_weekly(defs):
    graph = defs.resolve_asset_graph()
    for key in ("churn_scores", "transaction_anomaly_scores"):
        assert graph.get(dg.AssetKey(key)).automation_condition is not None, key
    training = defs.resolve_job_def("ml_training_job")
    scoring = defs.resolve_job_def("ml_scoring_job")
    assert training is not None and scoring is not None
    schedule = defs.resolve_schedule_def("ml_training_job_schedule")
    assert schedule.cron_schedule == "0 3 * * 1"
    assert schedule.execution_timezone == "Asia/Kolkata"
    sensor = defs.resolve_sensor_def("churn_feature_drift_sensor")
    assert sensor.job_name == "ml_training_job"
