"""The platform end to end in a temporary directory: a small simulated business (real billing
and payment code against the simulated gateway) -> ingestion assets (ledger, gateway port,
bank files, webhooks) -> dbt (tests as asset checks) -> forecast logged to MLflow. Twice, to
show the same world gives the same summary and no duplicated rows."""

import duckdb
import mlflow

WORLD = {"customers": 40, "months": 4, "seed": 11, "start": "2025-01-01"}


def test_demo_materializes_everything_and_is_repeatable(paysight_env):
    from orchestration.demo import run_demo
    from orchestration.lib.env import get_settings

    settings = get_settings()
    first = run_demo(settings, **WORLD)
    assert first["success"], first
    assert first["checks_failed"] == [], first["checks_failed"]
    assert first["checks_passed"] >= 15
    assert first["duplicate_raw_rows"] == 0
    assert first["payment_attempts"] > 40
    assert first["forecast_days"] == 28
    assert {row["candidate"] for row in first["forecast_backtest"]} >= {"seasonal_naive", "ets"}

    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    raw = con.execute(
        "select count(*), count(distinct charge_id) from raw.gateway_charges"
    ).fetchall()[0]
    fct = con.execute(
        "select count(*), count(distinct payment_id) from marts.fct_payments"
    ).fetchall()[0]
    ledger = con.execute("select count(*) from raw.ledger_invoices").fetchall()[0][0]
    attempts = con.execute("select count(*) from raw.ledger_payment_attempts").fetchall()[0][0]
    bank = con.execute("select count(*) from raw.bank_settlements").fetchall()[0][0]
    types = dict(
        con.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'marts' and table_name = 'fct_payments'"
        ).fetchall()
    )
    con.close()
    assert raw[0] == raw[1] == fct[0] == fct[1] > 0
    assert ledger > 0 and attempts > 0 and bank > 0
    assert types["amount_minor"] == "BIGINT" and types["fee_minor"] == "BIGINT"

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    runs = mlflow.search_runs(experiment_names=["paysight"])
    assert "revenue_forecast" in set(runs["tags.dagster_asset"])

    second = run_demo(settings, **WORLD)
    for key in (
        "payment_attempts",
        "success_rate",
        "collected_last_full_month",
        "forecast_net_revenue",
        "forecast_backtest",
        "simulation",
        "duplicate_raw_rows",
    ):
        assert second[key] == first[key], key
