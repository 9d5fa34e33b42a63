"""The retention job: a thin op over `billing_jobs.retention` (the ledger) and
`ingestion.retention` (landed webhook files, the warehouse's raw events, erased customers'
gateway copies). Its run logs the count per class and table; the op's metadata shows them."""

import json
from collections.abc import Callable
from typing import Any

import dagster as dg

from billing_jobs.errors import ValidationError
from billing_jobs.ledger import upgrade_ledger
from billing_jobs.payments.gateway_events import load_cursor
from billing_jobs.retention.erasure import erasure_scope
from billing_jobs.retention.ledger import apply_ledger_retention, remove_document_files
from billing_jobs.retention.policy import DEFAULT_POLICY, load_policy
from ingestion.landing_loads import get_cursor
from ingestion.retention import (
    ANALYTICS_TABLES,
    SCRUBBED,
    expire_landing_files,
    expire_warehouse,
    scrub_erased_customers,
)
from orchestration.defs.payments.jobs import WEBHOOK_CURSOR
from orchestration.lib.env import config_instant, get_settings
from orchestration.lib.resources import LandingResource, LedgerResource, WarehouseResource

RETENTION_JOB = "retention_job"


class RetentionConfig(dg.Config):
    """Operator knobs: the instant terms are measured at (default now), a dry run that only
    counts, and another policy file (default: the one shipped with paysight)."""

    as_of: str | None = None
    dry_run: bool = False
    policy_path: str | None = None


def run_retention(
    config: RetentionConfig,
    ledger: LedgerResource,
    warehouse: WarehouseResource,
    landing: LandingResource,
) -> dict[str, Any]:
    """Apply the policy everywhere it reaches; the counts per class and table."""
    as_of = config_instant(config.as_of)
    try:
        policy = load_policy(config.policy_path or DEFAULT_POLICY)
    except ValidationError as exc:
        raise dg.Failure(str(exc)) from None
    engine = ledger.engine()
    upgrade_ledger(engine)
    report = apply_ledger_retention(engine, policy, as_of, dry_run=config.dry_run)
    counts = {cls: dict(per) for cls, per in report.counts.items()}
    if config.dry_run:
        files = len(report.document_paths)
    else:
        settings = get_settings()
        files = remove_document_files(
            settings.documents_dir, report.document_paths, _object_deleter(settings.documents_url)
        )
    counts.setdefault("invoices", {})["document_files"] = files
    cutoffs = report.cutoffs
    with warehouse.connect() as con:
        # Both readers of the landing zone: the ledger's (gateway events applied) and the
        # warehouse's (raw.webhook_events). A file either has not finished is kept.
        readers = [load_cursor(engine, WEBHOOK_CURSOR), get_cursor(con, "webhook_events")]
        landed = expire_landing_files(
            landing.landing_dir(), cutoffs["webhook_bodies"], readers=readers,
            dry_run=config.dry_run, on_delete=_object_deleter(landing.url),
        )  # fmt: skip
        counts.setdefault("webhook_bodies", {})["landing_files"] = landed["landing_files"]
        for cls, per in expire_warehouse(
            con, cutoffs["webhook_bodies"], cutoffs["analytics"], dry_run=config.dry_run
        ).items():
            counts.setdefault(cls, {}).update({f"warehouse.{t}": n for t, n in per.items()})
        scrubbed = {} if config.dry_run else scrub_erased_customers(con, erasure_scope(engine))
        if not config.dry_run:  # Spark's Parquet copies lose the same rows and fields
            warehouse.publish_raw(con, [*ANALYTICS_TABLES, *SCRUBBED])
    engine.dispose()
    return {
        "as_of": as_of.isoformat(),
        "dry_run": config.dry_run,
        "cutoffs": {k: v.isoformat() for k, v in cutoffs.items()},
        "counts": counts,
        "totals": {cls: sum(per.values()) for cls, per in counts.items()},
        "landing_files_kept_unread": landed["landing_files_unread"],
        "erasure_scrubbed": scrubbed,
    }


def _object_deleter(url: str | None) -> Callable[[str], None] | None:
    """For an ``s3://`` location, what deletes a file's object too (the local spool alone
    would be mirrored back from the bucket); None for a local one."""
    from billing_jobs import storage

    return storage.S3Store.from_url(str(url)).delete if storage.is_remote(url) else None


@dg.op(tags={"kind": "retention"})
def retention_op(
    context: dg.OpExecutionContext,
    config: RetentionConfig,
    ledger: LedgerResource,
    warehouse: WarehouseResource,
    landing: LandingResource,
) -> dg.Output[dict]:
    """Delete (or blank) what the retention policy says has expired; log what and how much."""
    summary = run_retention(config, ledger, warehouse, landing)
    verb = "would delete" if config.dry_run else "deleted"
    for cls, per in summary["counts"].items():
        context.log.info("retention %s %s: %s", cls, verb, json.dumps(per, sort_keys=True))
    metadata: dict[str, Any] = {f"{cls}_rows": n for cls, n in summary["totals"].items()}
    metadata["landing_files_kept_unread"] = summary["landing_files_kept_unread"]
    if summary["landing_files_kept_unread"]:
        context.log.warning("retention kept %d landed webhook file(s) past their term that a "
                            "reader has not finished", summary["landing_files_kept_unread"])  # fmt: skip
    metadata["dry_run"] = summary["dry_run"]
    metadata["as_of"] = summary["as_of"]
    metadata["counts"] = dg.MetadataValue.json(summary["counts"])
    metadata["cutoffs"] = dg.MetadataValue.json(summary["cutoffs"])
    return dg.Output(summary, metadata=metadata)


@dg.job(
    name=RETENTION_JOB,
    tags={"paysight/area": "retention"},
    description="Delete what the retention policy says has expired (ledger, landed webhooks, "
    "warehouse events) and log the counts per class.",
)
def retention_job():
    retention_op()
