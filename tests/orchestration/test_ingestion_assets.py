"""Ingestion assets in Dagster: ledger copy, bank files and webhooks with quality checks."""

from datetime import UTC, datetime

import dagster as dg
import duckdb

from billing_jobs.catalog import DEMO_CATALOG, load_catalog
from billing_jobs.customers import create_customer
from billing_jobs.ledger import make_engine, upgrade_ledger
from billing_jobs.subscriptions.service import create_subscription, pause_subscription

T0 = datetime(2025, 4, 1, 6, 0, tzinfo=UTC)
HEADER = "settlement_id,utr,payment_id,gross,fee,tax,net,settled_at,currency\n"


def test_ledger_bank_and_webhook_assets(paysight_env):
    from orchestration.defs.ingestion.assets import (
        raw_bank_settlements,
        raw_ledger_tables,
        raw_webhook_events,
    )
    from orchestration.defs.resources import build_resources
    from orchestration.lib.env import get_settings

    settings = get_settings()
    engine = make_engine(settings.ledger_url)
    upgrade_ledger(engine)
    load_catalog(engine, DEMO_CATALOG, now=T0)
    cid = create_customer(engine, name="Acme", state_code="29", currency="INR", now=T0)["id"]
    sub = create_subscription(engine, customer_id=cid, plan="starter-monthly", start=T0)
    bank = settings.landing_dir / "bank"
    bank.mkdir(parents=True)
    (bank / "a.csv").write_text(
        HEADER
        + "setl_1,UTR1,pay_1,1000.00,20.00,3.60,976.40,2025-05-02T11:00:00+05:30,INR\n"
        + "setl_1,UTR1,pay_2,oops,20.00,3.60,976.40,2025-05-02T11:00:00+05:30,INR\n"
    )
    assets = [raw_ledger_tables, raw_bank_settlements, raw_webhook_events]
    resources = build_resources()
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(assets, resources=resources, instance=instance)
        assert result.success
        checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
        assert checks["raw_bank_settlements_rows_valid"] is False  # the bad line is quarantined
        assert checks["raw_webhook_events_rows_valid"] is True
        pause_subscription(engine, sub["id"], at=datetime(2025, 4, 10, tzinfo=UTC))
        again = dg.materialize([raw_ledger_tables], resources=resources, instance=instance)
        assert again.success
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    assert con.execute("select count(*) from raw.ledger_customers").fetchone()[0] == 1
    assert con.execute("select status from raw.ledger_subscriptions").fetchone()[0] == "paused"
    events = con.execute(
        "select count(*), count(distinct id) from raw.ledger_subscription_events"
    ).fetchone()
    assert events[0] == events[1] >= 2
    assert con.execute("select count(*) from raw.bank_settlements").fetchone()[0] == 1
    assert con.execute("select count(*) from raw.quarantine_bank_settlements").fetchone()[0] == 1
    con.close()
