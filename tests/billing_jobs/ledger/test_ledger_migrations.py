"""Migrations 0002 and 0003: the tables once created on first use (documents, outbox, payments
state, gateway events, alerts), for new ledgers and for ledgers that already had them."""

from __future__ import annotations

import importlib.util
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert, inspect, select, text
from sqlalchemy.engine import make_url

from billing_jobs.ledger import make_engine, upgrade_ledger
from billing_jobs.ledger.engine import MIGRATIONS_DIR
from billing_jobs.ledger.schema import invoice_documents, ops_alerts

TABLES = {
    "invoice_documents",
    "document_deliveries",
    "document_delivery_attachments",
    "document_delivery_files",
}
OPS_TABLES = {
    "payments_gateway_customers",
    "payments_method_details",
    "payments_collection_state",
    "payments_dunning_notifications",
    "payments_refunds",
    "payments_gateway_events",
    "payments_disputes",
    "payments_landing_cursors",
    "ops_alerts",
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def blank_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (no migrations run yet) on SQLite and, when configured, PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'blank.sqlite'}"
        return
    base = os.environ.get("PAYSIGHT_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("PAYSIGHT_TEST_POSTGRES_URL is not set; PostgreSQL variant skipped")
    name = f"paysight_mig_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(base).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _version(engine) -> str:
    with engine.connect() as conn:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _revision_tables(revision: str):
    """The tables a revision creates, as spelled out in the migration file itself (before the
    migrations existed, the services created exactly these on first use)."""
    path = next((MIGRATIONS_DIR / "versions").glob(f"{revision}_*.py"))
    spec = importlib.util.spec_from_file_location(f"ledger_rev_{revision}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module._tables()


def test_head_creates_every_operations_table(blank_url: str) -> None:
    engine = upgrade_ledger(blank_url)
    assert set(inspect(engine).get_table_names()) >= TABLES | OPS_TABLES
    assert _version(engine) == "0006"
    idx = {i["name"] for i in inspect(engine).get_indexes("document_deliveries")}
    assert "ix_document_deliveries_due" in idx
    engine.dispose()


def test_ledger_whose_tables_were_created_on_first_use_keeps_its_rows(blank_url: str) -> None:
    engine = upgrade_ledger(blank_url, revision="0001")
    assert not (TABLES | OPS_TABLES) & set(inspect(engine).get_table_names())
    # how ledgers got these tables before 0002 and 0003: created by the code that used them
    _revision_tables("0002").create_all(engine)
    _revision_tables("0003").create_all(engine)
    row = {
        "invoice_id": 7,
        "number": "INV/2526/000007",
        "path": "2526/INV-2526-000007.pdf",
        "sha256": "0" * 64,
        "lang": "en",
        "rendered_at": datetime(2025, 5, 1, tzinfo=UTC),
    }
    alert = {"source": "payments_collect_job", "run_id": "r1", "severity": "error",
             "message": "boom", "created_at": datetime(2025, 5, 1, tzinfo=UTC)}  # fmt: skip
    with engine.begin() as conn:
        conn.execute(insert(invoice_documents), row)
        conn.execute(insert(ops_alerts), alert)
    upgrade_ledger(engine)
    assert _version(engine) == "0006"
    with engine.connect() as conn:
        assert conn.execute(select(invoice_documents.c.number)).scalars().all() == [row["number"]]
        assert conn.execute(select(ops_alerts.c.run_id)).scalars().all() == ["r1"]
    engine.dispose()


def test_downgrade_and_upgrade_again(blank_url: str) -> None:
    url = blank_url
    engine = upgrade_ledger(url)
    upgrade_ledger(engine, revision="0001")  # alembic upgrade to an older rev is a no-op
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
    assert not (TABLES | OPS_TABLES) & set(inspect(engine).get_table_names())
    upgrade_ledger(engine)
    other = make_engine(url)
    assert set(inspect(other).get_table_names()) >= TABLES | OPS_TABLES
    other.dispose()
    engine.dispose()


def test_0005_claims_invoices_with_an_unresolved_attempt(blank_url: str) -> None:
    """A ledger from before 0005 with an attempt still pending: after the upgrade its invoice
    is claimed by it, so no collector charges the invoice again until the janitor resolves it."""
    from billing_jobs.catalog import DEMO_CATALOG, load_catalog
    from billing_jobs.customers import create_customer
    from billing_jobs.ledger import schema as s
    from billing_jobs.subscriptions.service import create_subscription

    at = datetime(2025, 5, 1, tzinfo=UTC)
    engine = upgrade_ledger(blank_url, revision="0004")
    load_catalog(engine, DEMO_CATALOG, now=at)
    cid = create_customer(engine, name="Acme", state_code="29", currency="INR", now=at)["id"]
    create_subscription(engine, customer_id=cid, plan="scale-monthly", start=at)
    with engine.begin() as conn:
        inv = conn.execute(select(s.invoices.c.id)).scalar_one()
        conn.execute(
            insert(s.payment_attempts),
            {"invoice_id": inv, "attempt_number": 1, "idempotency_key": "k1", "status": "pending",
             "gateway": "simulated", "amount_minor": 100, "currency": "INR", "created_at": at},
        )  # fmt: skip
    upgrade_ledger(engine)
    assert _version(engine) == "0006"
    cs = s.payments_collection_state
    with engine.connect() as conn:
        state = conn.execute(select(cs).where(cs.c.invoice_id == inv)).one()
        attempt_id = conn.execute(select(s.payment_attempts.c.id)).scalar_one()
    assert state.claim_attempt_id == attempt_id and state.claimed_at == at
    assert state.closed == 0 and state.next_retry_at is None
    engine.dispose()
