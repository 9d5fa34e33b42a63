"""Sensors of the ingestion area: newly landed webhook events start the ledger update
(`apply_gateway_events_job`) and the warehouse load (`ingestion_webhook_events_job`)."""

import json

import dagster as dg

from ingestion.webhooks.journal import iter_landed_events
from orchestration.defs.payments.jobs import apply_gateway_events_job
from orchestration.lib.env import get_settings

ingestion_webhook_events_job = dg.define_asset_job(
    "ingestion_webhook_events_job",
    selection=dg.AssetSelection.assets("raw_webhook_events"),
    description="Load newly landed webhook events into the warehouse (raw.webhook_events).",
)


@dg.sensor(
    jobs=[apply_gateway_events_job, ingestion_webhook_events_job], minimum_interval_seconds=30
)
def webhook_events_sensor(context: dg.SensorEvaluationContext):
    """When events landed since the last cursor, apply them to the ledger and load them into
    the warehouse (each job keeps its own position, so a skipped tick loses nothing)."""
    settings = get_settings()
    settings.sync_location("landing_url")  # an s3:// landing zone: ship and fetch segments
    landing = settings.landing_dir
    cursor = json.loads(context.cursor) if context.cursor else None
    events, new_cursor = iter_landed_events(landing, cursor, max_events=10_000)
    if not events:
        return dg.SkipReason("no new webhook events in the landing zone")
    context.update_cursor(json.dumps(new_cursor, sort_keys=True))
    last = events[-1]
    key = f"webhooks:{last.journal_file}:{last.offset}"
    tags = {"paysight/events": str(len(events))}
    # Run keys are unique per sensor, so each job gets its own.
    return [
        dg.RunRequest(run_key=f"{job.name}:{key}", job_name=job.name, tags=tags)
        for job in (apply_gateway_events_job, ingestion_webhook_events_job)
    ]
