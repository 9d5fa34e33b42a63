"""Ingestion assets: copy gateway data into the warehouse's ``raw`` schema."""

from datetime import UTC, datetime

import dagster as dg

from ingestion.gateway_charges import charges_frame
from ingestion.gateways.simulated import SimulatedGateway
from ingestion.warehouse import table_count, upsert_dataframe
from orchestration.lib.resources import GatewayResource, WarehouseResource


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
