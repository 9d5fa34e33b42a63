"""Ledger: migrations are complete and repeatable, SQLite runs in WAL with foreign keys."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, insert, text
from sqlalchemy.exc import IntegrityError

from billing_jobs.invoicing.documents.from_ledger import document_metadata
from billing_jobs.invoicing.mail import metadata as mail_metadata
from billing_jobs.ledger import metadata, upgrade_ledger
from billing_jobs.ledger import schema as s


def _document_metadata() -> MetaData:
    """The document and outbox tables (migration 0002), created without a naming convention."""
    combined = MetaData()
    for meta in (document_metadata, mail_metadata):
        for table in meta.tables.values():
            table.to_metadata(combined)
    return combined


def test_migrations_match_the_schema(engine) -> None:
    docs = _document_metadata()

    def only(meta: MetaData):
        # Each comparison sees its own tables only (else the other's show up as removals).
        def include(obj, name, type_, reflected, compare_to) -> bool:
            return type_ != "table" or name in meta.tables

        return include

    with engine.connect() as conn:
        for meta in (metadata, docs):
            ctx = MigrationContext.configure(conn, opts={"include_object": only(meta)})
            assert compare_metadata(ctx, meta) == []


def test_upgrade_is_repeatable(engine) -> None:
    upgrade_ledger(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0002"


def test_sqlite_pragmas(engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_foreign_keys_enforced(engine) -> None:
    row = {
        "customer_id": 12345,
        "status": "active",
        "currency": "INR",
        "interval": "month",
        "interval_count": 1,
        "billing_anchor": datetime(2026, 1, 1, tzinfo=UTC),
        "period_index": 0,
        "current_period_start": datetime(2026, 1, 1, tzinfo=UTC),
        "current_period_end": datetime(2026, 2, 1, tzinfo=UTC),
        "next_action_at": datetime(2026, 1, 1, tzinfo=UTC),
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(s.subscriptions), row)


def test_naive_datetimes_refused(engine) -> None:
    with pytest.raises(Exception, match="naive"), engine.begin() as conn:
        conn.execute(insert(s.settings), {"key": "x", "value": "y"})
        conn.execute(
            insert(s.idempotency_records),
            {
                "key": "k",
                "scope": "s",
                "request_hash": "h",
                "response_json": "{}",
                "created_at": datetime(2026, 1, 1),
            },
        )
    with engine.connect() as conn:  # the whole transaction rolled back
        assert conn.execute(text("SELECT count(*) FROM ledger_settings")).scalar() == 0
