"""Retention schedule: monthly, early on the 2nd in India (after month-end billing and reports)."""

import dagster as dg

from orchestration.defs.retention.jobs import retention_job

retention_job_schedule = dg.ScheduleDefinition(
    name="retention_job_schedule",
    job=retention_job,
    cron_schedule="30 2 2 * *",
    execution_timezone="Asia/Kolkata",
    description="Monthly retention: expired ledger records, landed webhook files and warehouse "
    "events are deleted and counted (off until an operator turns it on).",
)
