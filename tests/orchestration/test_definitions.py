"""The code location loads and holds the expected assets, checks, jobs and resources."""

import subprocess
import sys

import dagster as dg
import pytest

from orchestration.lib.paths import PROJECT_ROOT


@pytest.fixture(scope="module")
def defs():
    from orchestration.definitions import defs

    return defs


EXPECTED_ASSETS = {
    "raw_gateway_charges",
    "stg_simulated__charges",
    "fct_payments",
    "revenue_forecast",
}


def test_key_assets_exist(defs):
    keys = {k.to_user_string() for k in defs.resolve_all_asset_keys()}
    assert keys >= EXPECTED_ASSETS


def test_dbt_tests_are_asset_checks(defs):
    graph = defs.resolve_asset_graph()
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert ("fct_payments", "unique_fct_payments_payment_id") in checks
    assert ("fct_payments", "assert_payment_fees_not_above_amount") in checks or any(
        name == "assert_payment_fees_not_above_amount" for _, name in checks
    )
    assert any(asset == "stg_simulated__charges" for asset, _ in checks)


def test_groups_follow_folders(defs):
    graph = defs.resolve_asset_graph()
    group = {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert group["raw_gateway_charges"] == "ingestion"
    assert group["stg_simulated__charges"] == "staging"
    assert group["fct_payments"] == "marts"
    assert group["revenue_forecast"] == "ml"


def test_lineage_runs_from_raw_to_ml(defs):
    graph = defs.resolve_asset_graph()
    key = dg.AssetKey
    assert key("raw_gateway_charges") in graph.get(key("stg_simulated__charges")).parent_keys
    assert key("stg_simulated__charges") in graph.get(key("fct_payments")).parent_keys
    assert key("fct_payments") in graph.get(key("revenue_forecast")).parent_keys


def test_jobs_and_resources(defs):
    for job in (
        "platform_demo_job",
        "billing_run_job",
        "invoice_run_job",
        "apply_gateway_events_job",
    ):
        assert defs.resolve_job_def(job) is not None, job
    assert {"billing_run_job_schedule", "invoice_run_job_schedule"} <= {
        s.name for s in defs.schedules
    }
    assert "webhook_events_sensor" in {s.name for s in defs.sensors}
    assert {"warehouse", "ledger", "mlflow", "gateway", "dbt", "landing"} <= set(defs.resources)


def test_the_retention_job_is_monthly_and_off_by_default(defs):
    job = defs.resolve_job_def("retention_job")
    assert "retention policy" in job.description
    schedule = defs.resolve_schedule_def("retention_job_schedule")
    assert schedule.cron_schedule == "30 2 2 * *" and schedule.execution_timezone == "Asia/Kolkata"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert "Monthly retention" in schedule.description


def test_billing_runs_are_daily_in_the_billing_time_zone_and_never_overlap(defs):
    job = defs.resolve_job_def("billing_run_job")
    assert job.tags.get("paysight/billing") == "run"
    assert job.partitions_def.timezone == "Asia/Kolkata"
    schedule = defs.resolve_schedule_def("billing_run_job_schedule")
    assert schedule.execution_timezone == "Asia/Kolkata"
    instance_yaml = (PROJECT_ROOT / "deploy" / "dagster.yaml").read_text()
    assert "key: paysight/billing" in instance_yaml and "limit: 1" in instance_yaml


def test_dagster_definitions_validate():
    proc = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_payments_jobs_share_one_concurrency_pool(defs):
    """Collection, retries, dunning, the janitor and webhook outcomes never run at once in one
    instance (the ledger's per-invoice claim guards every other caller)."""
    import yaml

    for name in ("payments_collect_job", "payment_retries_job", "dunning_job",
                 "payments_janitor_job", "apply_gateway_events_job"):  # fmt: skip
        job = defs.resolve_job_def(name)
        assert job.tags.get("paysight/area") == "payments", name
        assert {node.definition.pool for node in job.graph.node_dict.values()} == {"payments"}
    instance = yaml.safe_load((PROJECT_ROOT / "deploy" / "dagster.yaml").read_text())
    limits = instance["concurrency"]["runs"]["tag_concurrency_limits"]
    assert {"key": "paysight/area", "value": "payments", "limit": 1} in limits
    assert instance["concurrency"]["pools"]["default_limit"] == 1
