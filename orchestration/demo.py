"""`paysight demo`: materialize every asset on the embedded defaults and summarize the result."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import typer

from billing_jobs.money import Money
from orchestration.lib.env import Settings

DEMO_RUN_CONFIG: dict[str, Any] = {
    # Keep the console quiet: the summary is the output; the full log is in the UI.
    "loggers": {"console": {"config": {"log_level": "WARNING"}}},
}


def build_world(settings: Settings, *, customers: int, months: int, seed: int, start: str):
    """A fresh simulated business where the settings point (ledger, gateway, bank files), and
    a fresh warehouse, so the same seed always gives the same summary."""
    from simulation import simulate

    try:
        date.fromisoformat(start)
    except ValueError:
        raise ValueError(f"--start must be a date like 2025-01-01, got {start!r}") from None
    for stale in (settings.landing_dir / "bank").glob("settlement_*.csv"):
        stale.unlink()
    assert settings.warehouse_path is not None
    for suffix in ("", ".wal"):
        Path(f"{settings.warehouse_path}{suffix}").unlink(missing_ok=True)
    return simulate(
        settings.ledger_url,
        settings.data_dir,
        customers=customers,
        months=months,
        seed=seed,
        start=start,
        landing_dir=settings.landing_dir,
        warehouse_path=settings.warehouse_path,
        overwrite=True,
    )


def run_demo(
    settings: Settings, *, customers: int, months: int, seed: int, start: str
) -> dict[str, Any]:
    """Build the world, run `platform_demo_job` in the configured instance, summarize."""
    from orchestration.definitions import defs
    from orchestration.defs.resources import build_resources

    world = build_world(settings, customers=customers, months=months, seed=seed, start=start)
    job = defs.resolve_job_def("platform_demo_job")
    with dg.DagsterInstance.get() as instance:
        # Data quality judges freshness at the end of the simulated history, not today.
        as_of = {"config": {"as_of": f"{world.end}T00:00:00+05:30"}}
        run_config = {
            **DEMO_RUN_CONFIG,
            "ops": {
                "raw_bank_settlements": as_of,
                "raw_webhook_events": as_of,
                "paysight_dbt_models": {"config": {"as_of": str(world.end)}},
            },
        }
        # Resources from the settings given, not those bound when the definitions were loaded.
        result = job.execute_in_process(
            run_config=run_config, instance=instance, resources=build_resources(settings)
        )
    checks = [
        (e.asset_key.to_user_string(), e.check_name, e.passed, e.severity)
        for e in result.get_asset_check_evaluations()
    ]
    summary = warehouse_summary(
        str(settings.warehouse_path), settings.default_currency, settings.spark_tables_dir
    )
    summary["models"] = model_quality(result)
    summary.update(
        {
            "success": result.success,
            "world": {
                "customers": customers,
                "months": months,
                "seed": seed,
                "start": start,
                "end": str(world.end),
            },
            "simulation": dict(world.counts),
            "checks_passed": sum(1 for _, _, ok, _ in checks if ok),
            "checks_failed": sorted(
                f"{a}:{c}"
                for a, c, ok, sev in checks
                if not ok and sev == dg.AssetCheckSeverity.ERROR
            ),
            "checks_warned": sorted(
                f"{a}:{c}"
                for a, c, ok, sev in checks
                if not ok and sev == dg.AssetCheckSeverity.WARN
            ),
            "where_next": {
                "dagster_ui": "make ui  (http://127.0.0.1:3000)",
                "warehouse": str(settings.warehouse_path),
                "mlflow": str(settings.mlflow_tracking_uri),
            },
        }
    )
    return summary


def warehouse_summary(
    warehouse_path: str, currency: str, tables_dir: Path | None = None
) -> dict[str, Any]:
    """Headline figures read back from the marts (deterministic for a given world);
    ``tables_dir``: Spark's tables, when the marts are built there."""
    from ingestion.warehouse import connect

    con = connect(warehouse_path, read_only=True, tables_dir=tables_dir)
    try:
        attempts, succeeded, customers = con.execute(
            """select count(*), count(*) filter (where status = 'succeeded'),
                      count(distinct customer_id)
               from marts.fct_payments where currency = ?""",
            [currency],
        ).fetchone()
        month, collected, net = con.execute(
            """select date_trunc('month', created_at) as m, sum(amount_minor),
                      sum(amount_minor - fee_minor - fee_tax_minor)
               from marts.fct_payments where status = 'succeeded' and currency = ?
               group by 1 order by 1 desc limit 1 offset 1""",
            [currency],
        ).fetchone() or (None, 0, 0)
        fc_days, fc_total, fc_lo, fc_hi = con.execute(
            """select count(*), sum(yhat), sum(yhat_lower), sum(yhat_upper)
               from ml.revenue_forecast
               where currency = ? and series = 'daily_net_revenue'""",
            [currency],
        ).fetchone()
        backtest = con.execute("select * from ml.revenue_forecast_backtest").df()
        mrr = con.execute(
            """select month, mrr_minor, arr_minor, nrr, active_customers from marts.mrr_monthly
               where currency = ? and active_customers > 0 order by month desc limit 1""",
            [currency],
        ).fetchall()
        recon = dict(
            con.execute(
                "select status, count(*) from marts.fct_reconciliation group by 1 order by 1"
            ).fetchall()
        )
        churn = con.execute(
            """select count(*), count(*) filter (where risk_band = 'high'),
                      coalesce(sum(mrr_minor) filter (where risk_band = 'high'), 0)
               from ml.churn_scores"""
        ).fetchall()[0]
        anomalies = con.execute(
            """select count(*), count(*) filter (where is_flagged)
               from ml.transaction_anomaly_scores"""
        ).fetchall()[0]
        duplicates = con.execute(
            "select count(*) - count(distinct charge_id) from raw.gateway_charges"
        ).fetchall()[0][0]
    finally:
        con.close()

    def fmt(minor: float | int | None) -> str:
        return Money(round(minor or 0), currency).format("en_IN")

    return {
        "currency": currency,
        "payment_attempts": int(attempts),
        "paying_customers": int(customers),
        "success_rate": round(succeeded / attempts, 4) if attempts else None,
        "last_full_month": str(month.date()) if month is not None else None,
        "collected_last_full_month": fmt(collected),
        "net_of_fees_last_full_month": fmt(net),
        "forecast_days": int(fc_days),
        "forecast_net_revenue": fmt(fc_total),
        "forecast_interval_80": [fmt(fc_lo), fmt(fc_hi)],
        "duplicate_raw_rows": int(duplicates),
        "mrr_month": str(mrr[0][0]) if mrr else None,
        "mrr": fmt(mrr[0][1]) if mrr else None,
        "arr": fmt(mrr[0][2]) if mrr else None,
        "nrr": round(float(mrr[0][3]), 4) if mrr and mrr[0][3] is not None else None,
        "active_customers": int(mrr[0][4]) if mrr else 0,
        "reconciliation": {k: int(v) for k, v in recon.items()},
        "churn_scored": int(churn[0]),
        "churn_high_risk": int(churn[1]),
        "churn_high_risk_mrr": fmt(churn[2]),
        "transactions_scored": int(anomalies[0]),
        "transactions_flagged": int(anomalies[1]),
        "forecast_backtest": [
            {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}
            for row in backtest.to_dict(orient="records")
        ],
    }


MODELS = ("churn_model", "transaction_anomaly_model", "retry_timing_model")
FIGURES = ("roc_auc", "precision_at_100")  # per candidate, measured on the later holdout window


def model_quality(result: Any) -> dict[str, dict[str, Any]]:
    """Holdout figures the training assets reported in this run (their materialization
    metadata: every candidate's ROC-AUC and, for anomalies, precision at 100), so the summary
    shows model quality next to its baselines without reading MLflow."""
    out: dict[str, dict[str, Any]] = {}
    for event in result.get_asset_materialization_events():
        name = event.asset_key.to_user_string()
        if name not in MODELS:
            continue
        meta = event.materialization.metadata
        figures = {
            key: round(entry.value, 3)
            for key, entry in sorted(meta.items())
            if key.endswith(FIGURES) and isinstance(entry.value, float)
        }
        if "promoted" in meta:
            figures["promoted"] = meta["promoted"].value
        out[name] = figures
    return out


def render_summary(s: dict[str, Any]) -> None:
    ok = (
        typer.style("OK", fg=typer.colors.GREEN)
        if s["success"]
        else typer.style("FAILED", fg=typer.colors.RED)
    )
    w = s["world"]
    lines = [
        f"paysight demo {ok}: {w['customers']} customers, {w['months']} months, seed {w['seed']}",
        "",
        f"  MRR ({s['mrr_month']})       {s['mrr']}  ARR {s['arr']}  NRR {s['nrr']}"
        f"  ({s['active_customers']} active customers)",
        f"  payment attempts        {s['payment_attempts']:,} from {s['paying_customers']:,} customers",
        f"  success rate            {s['success_rate']:.2%}"
        if s["success_rate"] is not None
        else "",
        f"  collected ({s['last_full_month']})  {s['collected_last_full_month']}"
        f"  (net of fees {s['net_of_fees_last_full_month']})",
        f"  forecast next {s['forecast_days']} days  {s['forecast_net_revenue']}"
        f"  (80%: {s['forecast_interval_80'][0]} .. {s['forecast_interval_80'][1]})",
        f"  data checks             {s['checks_passed']} passed, {len(s['checks_failed'])} failed,"
        f" {len(s['checks_warned'])} warnings",
        f"  duplicate raw rows      {s['duplicate_raw_rows']}",
    ]
    lines += [f"    failed: {c}" for c in s["checks_failed"]]
    lines += [f"    warning: {c}" for c in s["checks_warned"]]
    if s.get("reconciliation"):
        lines += ["", "Reconciliation (ledger x gateway x bank):"]
        lines += [f"  {k:22} {v:,}" for k, v in s["reconciliation"].items()]
    lines += [
        "",
        f"Churn: {s['churn_high_risk']:,} of {s['churn_scored']:,} customers at high risk"
        f" ({s['churn_high_risk_mrr']} MRR)",
        f"Anomalies: {s['transactions_flagged']:,} of {s['transactions_scored']:,} transactions"
        " flagged for review",
    ]
    if s.get("models"):
        lines += ["", "Models (holdout, a later time window than training):"]
        for name, figures in s["models"].items():
            lines.append(f"  {name}")
            lines += [f"    {k:40} {v}" for k, v in figures.items()]
    if s.get("forecast_backtest"):
        lines += ["", "Forecast backtest (rolling origin, out-of-sample):"]
        cols = [
            c for c in ("candidate", "smape", "mase", "chosen") if c in s["forecast_backtest"][0]
        ]
        lines.append("  " + "  ".join(f"{c:>14}" for c in cols))
        for row in s["forecast_backtest"]:
            lines.append("  " + "  ".join(f"{row[c]!s:>14}" for c in cols))
    lines += ["", "Where next:"] + [f"  {k:12} {v}" for k, v in s["where_next"].items()]
    typer.echo("\n".join(line for line in lines if line is not None))
