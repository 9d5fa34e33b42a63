"""invoice_run_job passes its knobs to the run and reports throughput; re-running is a no-op."""

from datetime import UTC, datetime

import dagster as dg
from sqlalchemy import text

from billing_jobs.ledger import make_engine
from tests.invoice_seed import billed_customers

T0 = datetime(2025, 4, 1, 6, 0, tzinfo=UTC)


def test_invoice_run_job_config_and_metadata(paysight_env):
    from orchestration.defs.billing.jobs import invoice_defs
    from orchestration.lib.env import get_settings
    from orchestration.lib.resources import LedgerResource

    url = get_settings().ledger_url
    engine = make_engine(url)
    billed_customers(engine, 3, T0, datetime(2025, 5, 2, tzinfo=UTC))
    with engine.connect() as conn:
        finalized = conn.execute(
            text("select count(*) from invoices where number is not null")
        ).scalar_one()
        conn.rollback()
    assert finalized >= 3

    job = next(j for j in invoice_defs().jobs if j.name == "invoice_run_job")
    config = {"ops": {"invoice_run_op": {"config": {"workers": 1, "chunk_size": 2}}}}
    resources = {"ledger": LedgerResource(url=url)}
    with dg.DagsterInstance.ephemeral() as instance:
        first = job.execute_in_process(instance=instance, resources=resources, run_config=config)
        again = job.execute_in_process(instance=instance, resources=resources, run_config=config)
    out = first.output_for_node("invoice_run_op")
    assert out["rendered"] == finalized and out["workers"] == 1 and out["errors"] == 0
    assert out["queued"] == 0 and out["pdfs_per_s"] > 0  # no e-mail addresses: stored only
    assert again.output_for_node("invoice_run_op")["rendered"] == 0
    assert len(list(get_settings().documents_dir.rglob("*.pdf"))) == finalized
