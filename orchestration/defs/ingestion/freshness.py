"""Freshness checks on the raw sources: each fails (warns) when its last load is older than the
window its source is expected to refresh in. `raw_freshness_sensor` evaluates them; it is off
after `make demo` like every automation (turn it on in the UI, Automation tab).

The windows: gateway objects and webhook events arrive all day (1 day); the ledger copy runs
with every billing cycle (1 day); banks settle on working days only (4 days covers a long
weekend with a bank holiday). dbt's own source freshness (`loaded_at_field` in
_raw__sources.yml) judges the data's timestamps; these judge the loads."""

from datetime import timedelta

import dagster as dg

from orchestration.defs.ingestion.assets import GATEWAY_TABLES, LEDGER_TABLES

FRESHNESS_WINDOWS: dict[str, tuple[list[str], timedelta]] = {
    "gateway": ([f"raw_{t}" for t in GATEWAY_TABLES], timedelta(days=1)),
    "webhooks": (["raw_webhook_events"], timedelta(days=1)),
    "bank": (["raw_bank_settlements"], timedelta(days=4)),
    "ledger": ([f"raw_ledger_{t}" for t in LEDGER_TABLES], timedelta(days=1)),
}

raw_freshness_checks: list[dg.AssetChecksDefinition] = [
    check
    for keys, window in FRESHNESS_WINDOWS.values()
    for check in dg.build_last_update_freshness_checks(
        assets=[dg.AssetKey(k) for k in keys], lower_bound_delta=window
    )
]

raw_freshness_sensor = dg.build_sensor_for_freshness_checks(
    freshness_checks=raw_freshness_checks, name="raw_freshness_sensor"
)
