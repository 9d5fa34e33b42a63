"""Payments schedules: retries hourly, dunning daily, the janitor every 15 minutes."""

import dagster as dg

from orchestration.defs.payments.jobs import DUNNING_JOB, JANITOR_JOB, RETRIES_JOB
from orchestration.lib.env import get_settings


@dg.definitions
def payments_schedule_defs() -> dg.Definitions:
    tz = get_settings().timezone
    return dg.Definitions(
        schedules=[
            dg.ScheduleDefinition(
                name="payment_retries_job_schedule",
                job_name=RETRIES_JOB,
                cron_schedule="5 * * * *",
                execution_timezone=tz,
            ),
            # 10:00 local: reminders arrive in working hours, after the night's billing run.
            dg.ScheduleDefinition(
                name="dunning_job_schedule",
                job_name=DUNNING_JOB,
                cron_schedule="0 10 * * *",
                execution_timezone=tz,
            ),
            dg.ScheduleDefinition(
                name="payments_janitor_job_schedule",
                job_name=JANITOR_JOB,
                cron_schedule="*/15 * * * *",
                execution_timezone=tz,
            ),
        ]
    )
