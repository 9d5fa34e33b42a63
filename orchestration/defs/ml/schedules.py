"""ML schedules: retrain weekly, early Monday in India, after the weekend's data is in."""

import dagster as dg

from orchestration.defs.ml.jobs import ml_training_job

ml_training_job_schedule = dg.ScheduleDefinition(
    name="ml_training_job_schedule",
    job=ml_training_job,
    cron_schedule="0 3 * * 1",
    execution_timezone="Asia/Kolkata",
    description="Weekly retraining of the churn, anomaly and retry models and the forecasts.",
)
