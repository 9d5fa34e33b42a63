"""The first vertical slice, end to end in a temporary directory:
simulated gateway -> raw_gateway_charges -> dbt (staging, fct_payments, tests as checks)
-> revenue_forecast logged to MLflow."""

import dagster as dg
import duckdb
import mlflow
import pytest

RUN_CONFIG = {
    "ops": {
        "raw_gateway_charges": {
            "config": {"seed": 11, "customers": 300, "start": "2025-01-01", "months": 4}
        }
    }
}


@pytest.fixture
def slice_assets():
    from orchestration.defs.ingestion.assets import raw_gateway_charges
    from orchestration.defs.ml.assets import revenue_forecast
    from orchestration.defs.transform.assets import paysight_dbt_models

    return [raw_gateway_charges, paysight_dbt_models, revenue_forecast]


def test_slice_materializes_end_to_end(paysight_env, slice_assets):
    from orchestration.defs.resources import build_resources
    from orchestration.lib.env import get_settings

    resources = build_resources()
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            slice_assets, resources=resources, run_config=RUN_CONFIG, instance=instance
        )
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) >= 10
    assert all(e.passed for e in evaluations), [e.check_name for e in evaluations if not e.passed]

    settings = get_settings()
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    raw = con.execute(
        "select count(*), count(distinct charge_id) from raw.gateway_charges"
    ).fetchone()
    fct = con.execute(
        "select count(*), count(distinct payment_id), sum(amount_minor) from marts.fct_payments"
    ).fetchone()
    statuses = dict(
        con.execute("select status, count(*) from marts.fct_payments group by 1").fetchall()
    )
    forecast = con.execute(
        "select count(*), min(yhat_lower <= yhat and yhat <= yhat_upper) from ml.revenue_forecast"
    ).fetchone()
    types = dict(
        con.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'marts' and table_name = 'fct_payments'"
        ).fetchall()
    )
    con.close()

    assert raw[0] == raw[1] > 1000  # a few thousand charges, no duplicates
    assert fct[0] == fct[1] == raw[0]
    assert statuses["succeeded"] > statuses["failed"] > 0
    assert types["amount_minor"] == "BIGINT" and types["fee_minor"] == "BIGINT"
    assert {
        "payment_id",
        "gateway",
        "gateway_payment_id",
        "invoice_id",
        "customer_id",
        "method",
        "status",
        "amount_minor",
        "currency",
        "fee_minor",
        "fee_tax_minor",
        "decline_code",
        "attempt_number",
        "created_at",
        "settled_at",
        "settlement_id",
    } <= set(types)
    assert forecast == (28, True)

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    runs = mlflow.search_runs(experiment_names=["paysight"])
    assert len(runs) == 1
    assert runs.iloc[0]["tags.dagster_asset"] == "revenue_forecast"
    assert runs.iloc[0]["metrics.holdout_smape"] >= 0

    # Materializing again with the same world adds no rows.
    with dg.DagsterInstance.ephemeral() as instance:
        again = dg.materialize(
            slice_assets[:1], resources=resources, run_config=RUN_CONFIG, instance=instance
        )
    assert again.success
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    assert con.execute("select count(*) from raw.gateway_charges").fetchone()[0] == raw[0]
    con.close()
