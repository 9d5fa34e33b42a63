"""Ingestion assets: copy gateway data into the warehouse's ``raw`` schema."""

from datetime import datetime

import dagster as dg

from billing_jobs.ledger import metadata as ledger_metadata
from ingestion.gateway_sync import ensure_raw_gateway_tables, sync_gateway
from ingestion.landing_loads import (
    get_cursor,
    load_bank_settlements,
    load_webhook_events,
    set_cursor,
)
from ingestion.ledger_copy import copy_ledger_tables
from ingestion.retention import scrub_erased_customers
from ingestion.warehouse import table_count
from orchestration.lib.env import config_instant
from orchestration.lib.resources import (
    GatewayResource,
    LandingResource,
    LedgerResource,
    WarehouseResource,
)


def _scrub_erased(context, con, ledger: LedgerResource, engine=None) -> list[str]:
    """Erased customers' personal data out of the raw copies (customers erased after a row was
    copied, or still on file at a gateway); logged when anything changed. Returns the raw
    tables changed."""
    from billing_jobs.ledger import upgrade_ledger
    from billing_jobs.retention.erasure import erasure_scope

    if engine is None:
        engine = ledger.engine()
        upgrade_ledger(engine)
    changed = scrub_erased_customers(con, erasure_scope(engine))
    if any(changed.values()):
        context.log.info("erased customers scrubbed from raw copies: %s", changed)
    return [table for table, n in changed.items() if n]


GATEWAY_TABLES = (
    "gateway_charges",
    "gateway_refunds",
    "gateway_disputes",
    "gateway_balance_transactions",
    "gateway_settlements",
    "gateway_customers",
    "gateway_events",
)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            f"raw_{table}",
            group_name="ingestion",
            kinds={"python", "duckdb"},
            description=f"Gateway objects ({table.removeprefix('gateway_')}) from every active "
            f"adapter, read through the Gateway port into raw.{table}.",
        )
        for table in GATEWAY_TABLES
    ],
)
def raw_gateway_objects(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    gateway: GatewayResource,
    ledger: LedgerResource,
):
    """Incremental copy of payments, refunds, disputes, fees, payouts, customers and events;
    erased customers' contact data is scrubbed from what the gateways still send."""
    totals: dict[str, int] = {}
    with warehouse.connect() as con:
        ensure_raw_gateway_tables(con)
        for name, adapter in gateway.adapters():
            counts = sync_gateway(adapter, name, con)
            context.log.info("gateway %s: %s", name, counts)
            for kind, n in counts.items():
                totals[kind] = totals.get(kind, 0) + n
        scrubbed = _scrub_erased(context, con, ledger)
        warehouse.publish_raw(con, [*GATEWAY_TABLES, *scrubbed])
        rows = {t: table_count(con, "raw", t) for t in GATEWAY_TABLES}
    copied = {
        "gateway_charges": totals.get("payments", 0),
        "gateway_refunds": totals.get("refunds", 0),
        "gateway_disputes": totals.get("disputes", 0),
        "gateway_balance_transactions": totals.get("balance_transactions", 0),
        "gateway_settlements": totals.get("payouts", 0),
        "gateway_customers": totals.get("customers", 0),
        "gateway_events": totals.get("events", 0),
    }
    for table in GATEWAY_TABLES:
        yield dg.MaterializeResult(
            asset_key=f"raw_{table}",
            metadata={
                "rows_copied": copied[table],
                "rows_in_table": rows[table],
                "events_applied": totals.get("events_applied", 0),
            },
        )


def _check_results(asset: str, report) -> list[dg.AssetCheckResult]:
    """Data-quality results of a load as Dagster asset checks (one per expectation family)."""
    failed = [c for c in report.checks if not c.success]
    return [
        dg.AssetCheckResult(
            asset_key=asset,
            check_name=f"{asset}_rows_valid",
            passed=report.quarantined == 0,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"quarantined": report.quarantined, "loaded": report.loaded},
        ),
        dg.AssetCheckResult(
            asset_key=asset,
            check_name=f"{asset}_expectations_pass",
            passed=not failed,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "expectations": len(report.checks),
                "failed": dg.MetadataValue.md(
                    "\n".join(f"- {c.check}: {c.unexpected_count} unexpected" for c in failed)
                    or "none"
                ),
            },
        ),
        _trusted_result(asset, report),
    ]


def _trusted_result(asset: str, report) -> dg.AssetCheckResult:
    """The blocking check: a load whose schema check failed or that rejected a whole file
    must not rebuild the marts on a partial picture. Rows set aside one by one do not block
    (they are quarantined and the rest is sound), nor does staleness (the freshness checks
    report it)."""
    table_failures = [
        c.check for c in report.checks if c.check.startswith("schema(") and not c.success
    ]
    rejected = list(getattr(report, "rejected_files", []))
    reasons = [f"table check failed: {c}" for c in table_failures]
    reasons += [f"file rejected whole: {name}" for name in rejected]
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=f"{asset}_load_trusted",
        passed=not reasons,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(reasons) or None,
        metadata={"reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in reasons) or "none")},
    )


def _quality_specs(asset: str) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            f"{asset}_rows_valid",
            asset=asset,
            description="Every landed row passed validation (else quarantined).",
        ),
        dg.AssetCheckSpec(
            f"{asset}_expectations_pass",
            asset=asset,
            description="Great Expectations suite: schema, keys, enums, freshness.",
        ),
        dg.AssetCheckSpec(
            f"{asset}_load_trusted",
            asset=asset,
            blocking=True,
            description="Blocking: fails when the schema check failed or a whole file was "
            "rejected, and then the marts downstream are not rebuilt in that run.",
        ),
    ]


class QualityConfig(dg.Config):
    """Freshness is judged against `as_of` (ISO instant; default: now)."""

    as_of: str | None = None

    def instant(self) -> datetime:
        return config_instant(self.as_of)


@dg.asset(
    group_name="ingestion",
    kinds={"python", "duckdb"},
    check_specs=_quality_specs("raw_webhook_events"),
    description="Verified webhook events from the landing zone (raw.webhook_events), loaded "
    "incrementally; invalid records go to raw.quarantine_webhook_events.",
)
def raw_webhook_events(
    context: dg.AssetExecutionContext,
    config: QualityConfig,
    warehouse: WarehouseResource,
    landing: LandingResource,
) -> dg.MaterializeResult:
    with warehouse.connect() as con:
        report = load_webhook_events(landing.landing_dir(), con, config.instant())
        warehouse.publish_raw(con, ["webhook_events"])
    return dg.MaterializeResult(
        metadata={"loaded": report.loaded, "quarantined": report.quarantined},
        check_results=_check_results("raw_webhook_events", report),
    )


@dg.asset(
    group_name="ingestion",
    kinds={"python", "duckdb"},
    check_specs=_quality_specs("raw_bank_settlements"),
    description="Bank settlement files (<landing>/bank/*.csv) streamed and parsed exactly into "
    "minor units (raw.bank_settlements); rejected lines, and files rejected whole (line 0, with "
    "their sha256), go to raw.quarantine_bank_settlements. A file is read again when its "
    "content hash changes, so a corrected file under the same name loads.",
)
def raw_bank_settlements(
    context: dg.AssetExecutionContext,
    config: QualityConfig,
    warehouse: WarehouseResource,
    landing: LandingResource,
) -> dg.MaterializeResult:
    with warehouse.connect() as con:
        report = load_bank_settlements(landing.landing_dir() / "bank", con, config.instant())
        warehouse.publish_raw(con, ["bank_settlements"])
    return dg.MaterializeResult(
        metadata={
            "files": report.files,
            "loaded": report.loaded,
            "quarantined": report.quarantined,
            "rejected_files": ", ".join(report.rejected_files) or "none",
        },
        check_results=_check_results("raw_bank_settlements", report),
    )


# Every ledger table is copied to the warehouse (raw.ledger_<table>) except those
# ingestion.ledger_copy.NOT_COPIED names with the reason; tests hold this list to the schema.
LEDGER_TABLES = (
    "ledger_settings",
    "customers",
    "payment_methods",
    "products",
    "plans",
    "prices",
    "coupons",
    "subscriptions",
    "subscription_items",
    "subscription_events",
    "invoices",
    "invoice_lines",
    "credit_notes",
    "credit_note_lines",
    "customer_balance_transactions",
    "payment_attempts",
    "payments_gateway_customers",
    "payments_method_details",
    "payments_collection_state",
    "payments_dunning_notifications",
    "payments_refunds",
    "payments_gateway_events",
    "payments_disputes",
    "invoice_documents",
    "document_deliveries",
)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            f"raw_ledger_{table}",
            group_name="ingestion",
            kinds={"python", "duckdb", "sqlite"},
            description=f"The billing ledger's `{table}` table, copied to raw.ledger_{table}.",
        )
        for table in LEDGER_TABLES
    ],
    can_subset=True,
)
def raw_ledger_tables(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, ledger: LedgerResource
):
    """Copy the ledger into the warehouse: incremental where rows carry a cursor."""
    from billing_jobs.ledger import upgrade_ledger

    selected = [
        t for t in LEDGER_TABLES if dg.AssetKey(f"raw_ledger_{t}") in context.selected_asset_keys
    ]
    engine = ledger.engine()
    upgrade_ledger(engine)
    with warehouse.connect() as con:
        cursors = get_cursor(con, "ledger_tables") or {}
        copies = copy_ledger_tables(
            engine, con, selected, cursors=cursors, metadata=ledger_metadata
        )
        cursors.update({c.table: c.cursor for c in copies if c.cursor is not None})
        set_cursor(con, "ledger_tables", cursors)
        scrubbed = _scrub_erased(context, con, ledger, engine)
        warehouse.publish_raw(con, [*(f"ledger_{c.table}" for c in copies), *scrubbed])
        counts = {c.table: table_count(con, "raw", f"ledger_{c.table}") for c in copies}
    for copy in copies:
        yield dg.MaterializeResult(
            asset_key=f"raw_ledger_{copy.table}",
            metadata={
                "rows_copied": copy.rows,
                "rows_in_table": counts[copy.table],
                "mode": copy.mode,
            },
        )
