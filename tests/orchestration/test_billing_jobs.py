"""The billing and invoice jobs run the real billing code against a temporary ledger."""

from datetime import UTC, datetime

import dagster as dg
from sqlalchemy import text

from billing_jobs.catalog import DEMO_CATALOG, load_catalog
from billing_jobs.customers import create_customer
from billing_jobs.ledger import make_engine, upgrade_ledger
from billing_jobs.subscriptions.service import create_subscription
from orchestration.defs.billing.jobs import billing_as_of

T0 = datetime(2025, 4, 1, 6, 0, tzinfo=UTC)


def test_partition_bills_to_the_end_of_its_local_day():
    as_of = billing_as_of("2025-05-01", "Asia/Kolkata")
    assert as_of.isoformat() == "2025-05-02T00:00:00+05:30"


def test_billing_run_job_partition_is_idempotent(paysight_env):
    from orchestration.defs.resources import build_resources
    from orchestration.lib.env import get_settings

    engine = make_engine(get_settings().ledger_url)
    upgrade_ledger(engine)
    load_catalog(engine, DEMO_CATALOG, now=T0)
    cid = create_customer(
        engine, name="Acme", state_code="29", currency="INR", now=T0, email="a@acme.test"
    )["id"]
    create_subscription(engine, customer_id=cid, plan="growth-monthly", start=T0, quantity=2)

    from orchestration.definitions import defs

    job = defs.resolve_job_def("billing_run_job")
    resources = build_resources()
    with dg.DagsterInstance.ephemeral() as instance:
        first = job.execute_in_process(
            partition_key="2025-05-20", instance=instance, resources=resources
        )
        second = job.execute_in_process(
            partition_key="2025-05-20", instance=instance, resources=resources
        )
    assert first.success and second.success
    out1, out2 = first.output_for_node("billing_run_op"), second.output_for_node("billing_run_op")
    assert out1["invoices_created"] >= 1 and out2["invoices_created"] == 0
    with engine.connect() as c:
        dupes = c.execute(
            text(
                "select count(*) from (select subscription_id, period_start from invoices "
                "where kind = 'recurring' group by 1, 2 having count(*) > 1)"
            )
        ).scalar_one()
    assert dupes == 0

    invoice_job = defs.resolve_job_def("invoice_run_job")
    with dg.DagsterInstance.ephemeral() as instance:
        result = invoice_job.execute_in_process(
            instance=instance,
            resources=resources,
            run_config={"ops": {"invoice_run_op": {"config": {"mail": True}}}},
        )
    summary = result.output_for_node("invoice_run_op")
    assert summary["rendered"] >= out1["invoices_created"] and summary["errors"] == 0
    assert list((paysight_env / "invoices").rglob("*.pdf"))
