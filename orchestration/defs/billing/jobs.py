"""Billing operations as Dagster jobs: the daily billing run (partitioned, never overlapping)."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from billing_jobs.ledger import upgrade_ledger
from billing_jobs.subscriptions.billing_run import run_billing
from orchestration.lib.env import config_instant, get_settings
from orchestration.lib.resources import LedgerResource

BILLING_CONCURRENCY_TAG = {"paysight/billing": "run"}
BILLING_START_DATE = "2024-01-01"


def billing_partitions() -> dg.DailyPartitionsDefinition:
    """One partition per billing day in the configured time zone (default Asia/Kolkata)."""
    return dg.DailyPartitionsDefinition(
        start_date=BILLING_START_DATE, timezone=get_settings().timezone
    )


class BillingRunConfig(dg.Config):
    """Operator knobs for a billing run."""

    batch_size: int = 1000
    as_of: str | None = None  # override: bill what is due at this ISO instant


def billing_as_of(partition_key: str, timezone: str) -> datetime:
    """A partition bills everything due by the end of its day in the billing time zone."""
    from zoneinfo import ZoneInfo

    day = datetime.fromisoformat(partition_key).replace(tzinfo=ZoneInfo(timezone))
    return day + timedelta(days=1)


@dg.op(pool="billing_run", tags={"kind": "billing"})
def billing_run_op(
    context: dg.OpExecutionContext, config: BillingRunConfig, ledger: LedgerResource
) -> dg.Output[dict]:
    """Run `billing_jobs.run_billing` for the partition's day; idempotent on re-run."""
    if config.as_of:
        as_of = config_instant(config.as_of)
    else:
        as_of = billing_as_of(context.partition_key, get_settings().timezone)
    engine = ledger.engine()
    upgrade_ledger(engine)
    result = run_billing(engine, as_of, batch_size=config.batch_size)
    summary = result.to_dict()
    summary.pop("invoice_ids", None)
    context.log.info("billing run as of %s: %s", as_of.isoformat(), summary)
    return dg.Output(summary, metadata={k: v for k, v in summary.items() if v is not None})


@dg.definitions
def defs() -> dg.Definitions:
    partitions = billing_partitions()

    @dg.job(
        name="billing_run_job",
        partitions_def=partitions,
        tags=BILLING_CONCURRENCY_TAG,
        description="Bill every subscription due by the end of the partition's day.",
    )
    def billing_run_job():
        billing_run_op()

    schedule = dg.build_schedule_from_partitioned_job(
        billing_run_job, hour_of_day=2, minute_of_hour=0, name="billing_run_job_schedule"
    )
    return dg.Definitions(jobs=[billing_run_job], schedules=[schedule])


class InvoiceRunConfig(dg.Config):
    """Operator knobs for the invoice-document run."""

    limit: int | None = None
    mail: bool = True
    # Render processes; None = one per core (in-process below a few dozen invoices).
    workers: int | None = None
    chunk_size: int = 16
    # Mails sent by this run; the rest stay queued for the next run or `send_due`.
    send_limit: int = 1000


@dg.op(pool="invoice_run", tags={"kind": "billing"})
def invoice_run_op(
    context: dg.OpExecutionContext, config: InvoiceRunConfig, ledger: LedgerResource
) -> dg.Output[dict]:
    """Render, store and mail every finalized invoice that has no document yet."""
    import time

    from billing_jobs.invoicing.documents.invoice_run import run_invoice_documents
    from billing_jobs.invoicing.mail import SmtpSettings, send_due

    settings = get_settings()
    engine = ledger.engine()
    upgrade_ledger(engine)
    now = datetime.now(UTC)
    started = time.perf_counter()
    report = run_invoice_documents(
        engine,
        settings.documents_dir,
        now,
        limit=config.limit,
        mail=config.mail,
        workers=config.workers,
        chunk_size=config.chunk_size,
    )
    settings.sync_location("documents_url")  # s3://: one object per new document
    seconds = time.perf_counter() - started
    sent = 0
    if config.mail and settings.smtp_url is not None:
        smtp = SmtpSettings.from_url(settings.smtp_url.get_secret_value())
        sent = len(send_due(engine, now, smtp, limit=config.send_limit).sent)
    summary = {
        "rendered": report.rendered,
        "queued": report.queued,
        "sent": sent,
        "errors": len(report.errors),
        "workers": report.workers,
        "render_seconds": round(seconds, 3),
        "pdfs_per_s": round(report.rendered / seconds, 2) if seconds > 0 else 0.0,
    }
    for err in report.errors[:20]:
        context.log.warning(err)
    return dg.Output(summary, metadata=summary)


@dg.definitions
def invoice_defs() -> dg.Definitions:
    @dg.job(name="invoice_run_job", description="Render, store and mail new invoice documents.")
    def invoice_run_job():
        invoice_run_op()

    schedule = dg.ScheduleDefinition(
        name="invoice_run_job_schedule",
        job=invoice_run_job,
        cron_schedule="30 3 * * *",
        execution_timezone=get_settings().timezone,
    )
    return dg.Definitions(jobs=[invoice_run_job], schedules=[schedule])
