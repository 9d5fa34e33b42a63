"""Migration 0002: the document/outbox tables, for new ledgers and for ledgers where
`ensure_document_tables` created them before the migration existed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, inspect, select, text

from billing_jobs.documents.from_ledger import ensure_document_tables, invoice_documents
from billing_jobs.ledger import make_engine, upgrade_ledger

TABLES = {
    "invoice_documents",
    "document_deliveries",
    "document_delivery_attachments",
    "document_delivery_files",
}


def _version(engine) -> str:
    with engine.connect() as conn:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def test_head_creates_the_document_tables(tmp_path: Path) -> None:
    engine = upgrade_ledger(f"sqlite:///{tmp_path / 'l.sqlite'}")
    assert set(inspect(engine).get_table_names()) >= TABLES
    assert _version(engine) == "0002"
    ensure_document_tables(engine)  # still a harmless no-op afterwards
    idx = {i["name"] for i in inspect(engine).get_indexes("document_deliveries")}
    assert "ix_document_deliveries_due" in idx
    engine.dispose()


def test_ledger_created_by_ensure_keeps_its_rows(tmp_path: Path) -> None:
    engine = upgrade_ledger(f"sqlite:///{tmp_path / 'old.sqlite'}", revision="0001")
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


def test_downgrade_and_upgrade_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'l.sqlite'}"
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
    assert set(inspect(make_engine(url)).get_table_names()) >= TABLES
    engine.dispose()
