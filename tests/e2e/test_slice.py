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

    # #19: a backup restored into an empty data directory gives the same demo summary.
    from datetime import UTC, datetime
    from pathlib import Path

    from orchestration.backup import backup, restore
    from orchestration.demo import warehouse_summary
    from orchestration.lib.env import load_settings

    here = settings.data_dir
    folder = Path(backup(settings, here.parent / "backups", at=datetime.now(UTC))["path"])
    elsewhere = here.parent / "restored"
    target = load_settings(
        data_dir=elsewhere,
        ledger_url=f"sqlite:///{elsewhere / 'ledger.sqlite'}",
        warehouse_path=elsewhere / "warehouse.duckdb",
        landing_url=str(elsewhere / "landing"),
        documents_url=str(elsewhere / "invoices"),
        mlflow_tracking_uri=f"sqlite:///{elsewhere / 'mlflow.db'}",
        mlflow_artifacts_dir=elsewhere / "mlartifacts",
    )
    restore(target, folder)
    currency = settings.default_currency
    assert warehouse_summary(str(target.warehouse_path), currency) == warehouse_summary(
        str(settings.warehouse_path), currency
    )
