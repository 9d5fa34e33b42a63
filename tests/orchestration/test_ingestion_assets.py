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


def test_a_bank_file_rejected_whole_blocks_the_assets_downstream(paysight_env):
    """`raw_bank_settlements_load_trusted` is blocking: a file rejected whole (here a header
    without the net column) fails it with the file named, and an asset downstream is not
    materialized in that run; a clean load lets it run."""
    from orchestration.defs.ingestion.assets import raw_bank_settlements
    from orchestration.defs.resources import build_resources
    from orchestration.lib.env import get_settings

    @dg.asset(deps=[raw_bank_settlements])
    def reconciliation_stand_in() -> None:
        return None

    bank = get_settings().landing_dir / "bank"
    bank.mkdir(parents=True)
    (bank / "bad.csv").write_text(
        "settlement_id,utr,payment_id,gross,fee,tax,settled_at,currency\n"
        "setl_1,UTR1,pay_1,1000.00,20.00,3.60,2025-05-02T11:00:00+05:30,INR\n"
    )
    assets = [raw_bank_settlements, reconciliation_stand_in]
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            assets, resources=build_resources(), instance=instance, raise_on_error=False
        )
        evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
        trusted = evaluations["raw_bank_settlements_load_trusted"]
        assert trusted.passed is False
        assert trusted.severity == dg.AssetCheckSeverity.ERROR
        assert "bad.csv" in trusted.description
        materialized = {m.asset_key for m in result.get_asset_materialization_events()}
        assert dg.AssetKey("reconciliation_stand_in") not in materialized

        (bank / "bad.csv").unlink()
        (bank / "good.csv").write_text(
            HEADER + "setl_1,UTR1,pay_1,1000.00,20.00,3.60,976.40,2025-05-02T11:00:00+05:30,INR\n"
        )
        again = dg.materialize(assets, resources=build_resources(), instance=instance)
        checks = {e.check_name: e.passed for e in again.get_asset_check_evaluations()}
        assert checks["raw_bank_settlements_load_trusted"] is True
        assert dg.AssetKey("reconciliation_stand_in") in {
            m.asset_key for m in again.get_asset_materialization_events()
        }


def test_every_raw_source_has_a_freshness_check_that_passes_right_after_a_load(paysight_env):
    from orchestration.defs.ingestion.assets import raw_bank_settlements, raw_webhook_events
    from orchestration.defs.ingestion.freshness import FRESHNESS_WINDOWS, raw_freshness_checks
    from orchestration.defs.resources import build_resources

    checked = {key for checks in raw_freshness_checks for key in checks.check_keys}
    raw_keys = {dg.AssetKey(k) for keys, _ in FRESHNESS_WINDOWS.values() for k in keys}
    assert {c.asset_key for c in checked} == raw_keys
    assert {"raw_webhook_events", "raw_bank_settlements"} <= {k.path[0] for k in raw_keys}
    bank_and_webhooks = [
        c
        for c in raw_freshness_checks
        if {k.asset_key.path[0] for k in c.check_keys}
        & {"raw_webhook_events", "raw_bank_settlements"}
    ]
    with dg.DagsterInstance.ephemeral() as instance:
        # Before any load the checks fail: nothing was ever updated.
        before = dg.materialize(
            bank_and_webhooks,
            instance=instance,
            selection=dg.AssetSelection.checks(*bank_and_webhooks),
            raise_on_error=False,
        )
        assert before.get_asset_check_evaluations()
        assert not any(e.passed for e in before.get_asset_check_evaluations())
        dg.materialize(
            [raw_bank_settlements, raw_webhook_events],
            resources=build_resources(),
            instance=instance,
        )
        after = dg.materialize(
            bank_and_webhooks,
            instance=instance,
            selection=dg.AssetSelection.checks(*bank_and_webhooks),
        )
        assert after.get_asset_check_evaluations()
        assert all(e.passed for e in after.get_asset_check_evaluations())
