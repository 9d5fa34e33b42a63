"""The retention job on real stores (SQLite ledger, landing directory, DuckDB warehouse): a dry
run counts without changing anything, the run deletes what expired, logs and shows the counts
per class, and a second run finds nothing; and `paysight customers erase` at the edge."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import dagster as dg
import duckdb
import pytest
from sqlalchemy import func, insert, select
from typer.testing import CliRunner

from billing_jobs.catalog import DEMO_CATALOG, load_catalog
from billing_jobs.customers import create_customer
from billing_jobs.ledger import make_engine, upgrade_ledger
from billing_jobs.ledger import schema as s
from billing_jobs.payments.gateway_events import save_cursor
from billing_jobs.subscriptions.service import cancel_subscription, create_subscription
from ingestion.landing_loads import set_cursor

T0 = datetime(2025, 5, 10, tzinfo=UTC)
AS_OF = "2034-04-01T00:00:00+05:30"  # FY 2025-26 ended eight years before
runner = CliRunner()


def _cli(*args: str, input: str | None = None):
    from orchestration.cli import app

    return runner.invoke(app, list(args), input=input)


@pytest.fixture
def stores(paysight_env):
    from orchestration.lib.env import get_settings

    settings = get_settings()
    engine = make_engine(str(settings.ledger_url))
    upgrade_ledger(engine)
    load_catalog(engine, DEMO_CATALOG, now=datetime(2025, 1, 1, tzinfo=UTC))
    cid = create_customer(engine, name="Asha Rao", email="asha@example.com", state_code="29",
                          currency="INR", now=T0)["id"]  # fmt: skip
    sub = create_subscription(engine, customer_id=cid, plan="scale-monthly", start=T0)
    cancel_subscription(engine, sub["id"], at=datetime(2025, 5, 20, tzinfo=UTC))
    with engine.begin() as conn:
        inv = conn.execute(select(s.invoices.c.id)).scalar_one()
        conn.execute(insert(s.invoice_documents).values(
            invoice_id=inv, number="INV/2526/000001", path="2526/INV-2526-000001.pdf",
            sha256="0" * 64, lang="en", rendered_at=T0,
        ))  # fmt: skip
    pdf = settings.documents_dir / "2526" / "INV-2526-000001.pdf"
    pdf.parent.mkdir(parents=True)
    pdf.write_bytes(b"%PDF-1.7 Asha Rao")
    read = {}
    for day in ("2025-05-10", "2025-05-11", "2034-03-30"):
        folder = settings.landing_dir / "webhooks" / "stripe" / day
        folder.mkdir(parents=True)
        (folder / "events-1-1.jsonl").write_text('{"body": "{}"}\n')
        read[f"webhooks/stripe/{day}/events-1-1.jsonl"] = 15
    (settings.landing_dir / "webhooks" / "stripe" / "not-a-day").mkdir()
    # Both readers finished 2025-05-10; the warehouse has not read 2025-05-11 yet.
    save_cursor(engine, "webhooks", read)
    con = duckdb.connect(str(settings.warehouse_path))
    set_cursor(con, "webhook_events", {**read, "webhooks/stripe/2025-05-11/events-1-1.jsonl": 0})
    con.execute("create table raw.webhook_events (received_at timestamp, body varchar)")
    con.execute("insert into raw.webhook_events values ('2025-05-10', '{}'), "
                "('2033-12-01', '{}'), ('2034-03-30', '{}')")  # fmt: skip
    con.close()
    yield settings, engine, pdf
    engine.dispose()


def _run(dry_run: bool, instance=None):
    from orchestration.defs.resources import build_resources
    from orchestration.defs.retention.jobs import retention_job

    return retention_job.execute_in_process(
        run_config={"ops": {"retention_op": {"config": {"as_of": AS_OF, "dry_run": dry_run}}}},
        resources=build_resources(),
        instance=instance,
    )


def _counts(result) -> dict:
    [mat] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    return mat.event_specific_data.metadata


def test_the_retention_job_counts_deletes_and_is_idempotent(stores):
    settings, engine, pdf = stores
    dry = _run(dry_run=True)
    assert dry.success
    summary = dry.output_for_node("retention_op")
    assert summary["dry_run"] and summary["counts"]["invoices"]["invoices"] == 1
    assert summary["counts"]["webhook_bodies"]["landing_files"] == 1
    assert summary["landing_files_kept_unread"] == 1
    assert summary["counts"]["webhook_bodies"]["warehouse.webhook_events"] == 1
    assert summary["counts"]["analytics"]["warehouse.webhook_events"] == 1
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(s.invoices)).scalar_one() == 1
    assert pdf.exists()

    instance = dg.DagsterInstance.ephemeral()
    real = _run(dry_run=False, instance=instance)
    done = real.output_for_node("retention_op")
    assert done["counts"] == summary["counts"] and done["totals"]["invoices"] >= 5
    metadata = _counts(real)
    assert metadata["invoices_rows"].value == done["totals"]["invoices"]
    assert metadata["counts"].value == done["counts"]
    logged = [e.user_message for e in instance.all_logs(real.run_id)]
    assert any(m.startswith("retention invoices deleted: {") for m in logged), logged
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(s.invoices)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(s.customers)).scalar_one() == 1
    assert not pdf.exists()
    days = sorted(p.name for p in (settings.landing_dir / "webhooks" / "stripe").iterdir())
    assert days == ["2025-05-11", "2034-03-30", "not-a-day"]  # unread by the warehouse: kept
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    rows = con.execute("select cast(received_at as date)::varchar, body from raw.webhook_events "
                       "order by 1").fetchall()  # fmt: skip
    con.close()
    assert rows == [("2033-12-01", None), ("2034-03-30", "{}")]

    again = _run(dry_run=False).output_for_node("retention_op")
    assert set(again["totals"].values()) == {0} and again["landing_files_kept_unread"] == 1


def test_a_bad_policy_or_as_of_fails_the_run_with_the_reason(stores, tmp_path):
    from orchestration.defs.resources import build_resources
    from orchestration.defs.retention.jobs import retention_job

    bad = tmp_path / "policy.yaml"
    bad.write_text("classes: {}\n")
    for config, needle in (({"policy_path": str(bad)}, "missing class(es) payments"),
                           ({"as_of": "2034-04-01"}, "UTC offset")):  # fmt: skip
        result = retention_job.execute_in_process(
            run_config={"ops": {"retention_op": {"config": config}}},
            resources=build_resources(), raise_on_error=False,
        )  # fmt: skip
        assert not result.success
        failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
        assert needle in str(failure.event_specific_data.error), failure


ERASE_REFUSED = [
    (["customers", "erase", "1"], "not confirmed"),
    (["customers", "erase", "0", "--yes"], "customer_id"),
    (["customers", "erase", str(2**63), "--yes"], "customer_id"),
    (["customers", "erase", "abc", "--yes"], "customer_id"),
    (["customers", "erase", "99", "--yes"], "customer 99 does not exist"),
    (["customers", "erase", "1", "--yes", "--at", "2025-07-01"], "UTC offset"),
    (["customers", "erase", "1", "--yes", "--at", "9999-12-31T00:00:00Z"], "outside 2000-01-01"),
    (["customers", "erase", "1", "--yes", "--at", "2025-07-01T00:00:00Z\x1b[2J"], "U+001B"),
]


def test_erase_refuses_bad_input_and_changes_nothing(stores):
    _, engine, _ = stores
    for args, needle in ERASE_REFUSED:  # one ledger for all: each case must leave it unchanged
        result = _cli(*args)
        plain = " ".join(result.output.translate(str.maketrans("", "", "│╭╮╰╯─")).split())
        assert result.exit_code == 2 and needle in plain, (args, result.output)
        with engine.connect() as conn:
            assert conn.execute(select(s.customers.c.name)).scalar_one() == "Asha Rao"
            erasures = conn.execute(select(func.count()).select_from(s.customer_erasures))
            assert erasures.scalar_one() == 0


def test_erase_with_yes_or_confirmation_and_again(stores):
    _, engine, _ = stores
    assert _cli("customers", "erase", "1", input="n\n").exit_code == 2
    first = _cli("customers", "erase", "1", "--at", "2025-07-01T00:00:00Z", input="y\n")
    assert first.exit_code == 0 and "customer 1 erased" in first.output, first.output
    again = _cli("customers", "erase", "1", "--yes", "--json")
    out = json.loads(again.output)
    assert out["already_erased"] and out["erased_at"] == "2025-07-01T00:00:00+00:00"
    with engine.connect() as conn:
        assert conn.execute(select(s.customers.c.name)).scalar_one() == "Erased customer 1"
    shown = _cli("customers", "show", "1", "--json")
    assert "asha" not in shown.output.lower()
