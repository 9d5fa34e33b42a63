"""Ledger: migrations are complete and repeatable, SQLite runs in WAL with foreign keys."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import insert, text
from sqlalchemy.exc import IntegrityError

from billing_jobs.ledger import metadata, upgrade_ledger
from billing_jobs.ledger import schema as s


def test_migrations_match_the_schema(engine) -> None:
    """Every table of the one ledger schema is created by the migrations, exactly as declared
    (none is created on first use)."""
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn)
        assert compare_metadata(ctx, metadata) == []


def test_upgrade_is_repeatable(engine) -> None:
    upgrade_ledger(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0006"


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
