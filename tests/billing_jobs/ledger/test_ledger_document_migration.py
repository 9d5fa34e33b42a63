"""Migration 0002: the document/outbox tables, for new ledgers and for ledgers where
`ensure_document_tables` created them before the migration existed."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert, inspect, select, text
from sqlalchemy.engine import make_url

from billing_jobs.invoicing.documents.from_ledger import ensure_document_tables, invoice_documents
from billing_jobs.ledger import make_engine, upgrade_ledger

TABLES = {
    "invoice_documents",
    "document_deliveries",
    "document_delivery_attachments",
    "document_delivery_files",
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


def test_head_creates_the_document_tables(blank_url: str) -> None:
    engine = upgrade_ledger(blank_url)
    assert set(inspect(engine).get_table_names()) >= TABLES
    assert _version(engine) == "0002"
    ensure_document_tables(engine)  # still a harmless no-op afterwards
    idx = {i["name"] for i in inspect(engine).get_indexes("document_deliveries")}
    assert "ix_document_deliveries_due" in idx
    engine.dispose()


def test_ledger_created_by_ensure_keeps_its_rows(blank_url: str) -> None:
    engine = upgrade_ledger(blank_url, revision="0001")
    assert not TABLES & set(inspect(engine).get_table_names())
    ensure_document_tables(engine)  # how ledgers got these tables before 0002
    row = {
        "invoice_id": 7,
        "number": "INV/2526/000007",
        "path": "2526/INV-2526-000007.pdf",
        "sha256": "0" * 64,
        "lang": "en",
        "rendered_at": datetime(2025, 5, 1, tzinfo=UTC),
    }
    with engine.begin() as conn:
        conn.execute(insert(invoice_documents), row)
    upgrade_ledger(engine)
    assert _version(engine) == "0002"
    with engine.connect() as conn:
        assert conn.execute(select(invoice_documents.c.number)).scalars().all() == [row["number"]]
    engine.dispose()


def test_downgrade_and_upgrade_again(blank_url: str) -> None:
    url = blank_url
    engine = upgrade_ledger(url)
    upgrade_ledger(engine, revision="0001")  # alembic upgrade to an older rev is a no-op
    from alembic import command
    from alembic.config import Config

    from billing_jobs.ledger.engine import MIGRATIONS_DIR

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
    assert not TABLES & set(inspect(engine).get_table_names())
    upgrade_ledger(engine)
    other = make_engine(url)
    assert set(inspect(other).get_table_names()) >= TABLES
    other.dispose()
    engine.dispose()
