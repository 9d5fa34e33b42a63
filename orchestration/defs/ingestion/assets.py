"""Ingestion assets: copy gateway data into the warehouse's ``raw`` schema."""

from datetime import UTC, datetime

import dagster as dg

from ingestion.gateway_charges import charges_frame
from ingestion.gateways.simulated import SimulatedGateway
from ingestion.landing_loads import (
    get_cursor,
    load_bank_settlements,
    load_webhook_events,
    set_cursor,
)
from ingestion.ledger_copy import copy_ledger_tables
from ingestion.warehouse import table_count, upsert_dataframe
from orchestration.lib.resources import (
    GatewayResource,
    LandingResource,
    LedgerResource,
    WarehouseResource,
)


class SimulatedWorldConfig(dg.Config):
    """The simulated business whose gateway history is ingested (used by the demo)."""

    seed: int = 42
    customers: int = 600
    start: str = "2025-01-01"
    months: int = 6


@dg.asset(
    group_name="ingestion",
    kinds={"python", "duckdb"},
    description="Charge attempts from every active gateway, one row per attempt (raw.gateway_charges).",
)
def raw_gateway_charges(
    context: dg.AssetExecutionContext,
    config: SimulatedWorldConfig,
    warehouse: WarehouseResource,
    gateway: GatewayResource,
) -> dg.MaterializeResult:
    if "simulated" not in gateway.gateways:
        raise dg.Failure("raw_gateway_charges: no supported gateway active in PAYSIGHT_GATEWAYS")
    start = datetime.fromisoformat(config.start).replace(tzinfo=UTC)
    month_index = start.month - 1 + config.months
    end = start.replace(year=start.year + month_index // 12, month=month_index % 12 + 1)
    sim = SimulatedGateway(seed=config.seed, customers=config.customers)
    frame = charges_frame(sim.charges(start, end), gateway="simulated")
    with warehouse.connect() as con:
        written = upsert_dataframe(con, "raw", "gateway_charges", frame, key="charge_id")
        total = table_count(con, "raw", "gateway_charges")
    context.log.info("wrote %d charge rows (%d in table)", written, total)
    return dg.MaterializeResult(
        metadata={
            "rows_written": written,
            "rows_in_table": total,
            "window": f"{start.date()} .. {end.date()}",
            "preview": dg.MetadataValue.md(frame.drop(columns=["raw_json"]).head(5).to_markdown()),
        }
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
    ]


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
    ]


@dg.asset(
    group_name="ingestion",
    kinds={"python", "duckdb"},
    check_specs=_quality_specs("raw_webhook_events"),
    description="Verified webhook events from the landing zone (raw.webhook_events), loaded "
    "incrementally; invalid records go to raw.quarantine_webhook_events.",
)
def raw_webhook_events(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, landing: LandingResource
) -> dg.MaterializeResult:
    with warehouse.connect() as con:
        report = load_webhook_events(landing.landing_dir(), con, datetime.now(UTC))
    return dg.MaterializeResult(
        metadata={"loaded": report.loaded, "quarantined": report.quarantined},
        check_results=_check_results("raw_webhook_events", report),
    )


@dg.asset(
    group_name="ingestion",
    kinds={"python", "duckdb"},
    check_specs=_quality_specs("raw_bank_settlements"),
    description="Bank settlement files (<landing>/bank/*.csv) parsed exactly into minor units "
    "(raw.bank_settlements); rejected lines go to raw.quarantine_bank_settlements.",
)
def raw_bank_settlements(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, landing: LandingResource
) -> dg.MaterializeResult:
    with warehouse.connect() as con:
        report = load_bank_settlements(landing.landing_dir() / "bank", con, datetime.now(UTC))
    return dg.MaterializeResult(
        metadata={
            "files": report.files,
            "loaded": report.loaded,
            "quarantined": report.quarantined,
        },
        check_results=_check_results("raw_bank_settlements", report),
    )


# Ledger tables copied to the warehouse (raw.ledger_<table>); bookkeeping tables stay behind.
LEDGER_TABLES = (
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
    from billing_jobs.ledger import schema, upgrade_ledger

    selected = [
        t for t in LEDGER_TABLES if dg.AssetKey(f"raw_ledger_{t}") in context.selected_asset_keys
    ]
    engine = ledger.engine()
    upgrade_ledger(engine)
    with warehouse.connect() as con:
        cursors = get_cursor(con, "ledger_tables") or {}
        copies = copy_ledger_tables(
            engine, con, selected, cursors=cursors, metadata=schema.metadata
        )
        cursors.update({c.table: c.cursor for c in copies if c.cursor is not None})
        set_cursor(con, "ledger_tables", cursors)
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
