"""Payments sensors: collect after each successful billing run; record failed payments runs as
alerts (an `ops_alerts` row in the ledger and an error log line)."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
from sqlalchemy import Engine, insert, select

from billing_jobs.ledger import make_engine
from billing_jobs.ledger.schema import ops_alerts
from orchestration.defs.payments.jobs import COLLECT_JOB, PAYMENT_JOBS
from orchestration.lib.env import get_settings

BILLING_JOB = "billing_run_job"


def record_alert(
    engine: Engine, source: str, run_id: str, message: str, now: datetime, severity: str = "error"
) -> bool:
    """Insert the alert once per run (a re-evaluated sensor does not duplicate it)."""
    with engine.begin() as conn:
        if conn.execute(select(ops_alerts.c.id).where(ops_alerts.c.run_id == run_id)).first():
            return False
        conn.execute(
            insert(ops_alerts),
            {"source": source, "run_id": run_id, "severity": severity,
             "message": message[:4000], "created_at": now},
        )  # fmt: skip
    return True


def _billing_run_success_sensor() -> dg.SensorDefinition:
    @dg.sensor(name="billing_run_success_sensor", job_name=COLLECT_JOB, minimum_interval_seconds=60)
    def billing_run_success_sensor(context: dg.SensorEvaluationContext):
        """Start one collection after new successful `billing_run_job` runs (cursor: the
        last billing run seen, by update time)."""
        after = float(context.cursor) if context.cursor else None
        runs = context.instance.get_run_records(
            filters=dg.RunsFilter(
                job_name=BILLING_JOB,
                statuses=[dg.DagsterRunStatus.SUCCESS],
                updated_after=datetime.fromtimestamp(after, UTC) if after is not None else None,
            ),
            limit=100,
        )
        if not runs:
            return dg.SkipReason(f"no successful {BILLING_JOB} run since the last check")
        latest = max(runs, key=lambda r: r.update_timestamp)
        context.update_cursor(str(latest.update_timestamp.timestamp()))
        return dg.RunRequest(
            run_key=f"after-billing:{latest.dagster_run.run_id}",
            tags={"paysight/after_billing_run": latest.dagster_run.run_id},
        )

    return billing_run_success_sensor


def _payments_run_failure_sensor() -> dg.RunFailureSensorDefinition:
    @dg.run_failure_sensor(name="payments_run_failure_sensor", minimum_interval_seconds=30)
    def payments_run_failure_sensor(context: dg.RunFailureSensorContext):
        """A failed payments run becomes an ops alert (a ledger row and an error log line)."""
        run = context.dagster_run
        if run.job_name not in PAYMENT_JOBS:
            return dg.SkipReason(f"{run.job_name} is not a payments job")
        message = context.failure_event.message or "run failed"
        engine = make_engine(str(get_settings().ledger_url))
        try:
            record_alert(engine, run.job_name, run.run_id, message, datetime.now(UTC))
        finally:
            engine.dispose()
        context.log.error("payments alert: %s run %s failed: %s", run.job_name, run.run_id, message)
        return None

    return payments_run_failure_sensor


@dg.definitions
def payments_sensor_defs() -> dg.Definitions:
    return dg.Definitions(sensors=[_billing_run_success_sensor(), _payments_run_failure_sensor()])
