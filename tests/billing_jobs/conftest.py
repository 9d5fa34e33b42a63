"""Ledger fixtures: every ledger test runs on SQLite and, when PAYSIGHT_TEST_POSTGRES_URL is
set, on PostgreSQL (a fresh database per test session, truncated between tests)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from billing_jobs.catalog import DEMO_CATALOG, load_catalog
from billing_jobs.customers import create_customer
from billing_jobs.ledger import make_engine, metadata, upgrade_ledger

PG_ENV = "PAYSIGHT_TEST_POSTGRES_URL"
CATALOG_AT = datetime(2025, 1, 1, tzinfo=UTC)
SUPPLIER_STATE = "29"  # the demo supplier is in Karnataka
# Valid GSTINs (checksums computed with the real algorithm).
GSTIN_KA = "29ABCDE1234F1ZW"
GSTIN_MH = "27AAPFU0939F1ZV"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ledger-template") / "ledger.sqlite"
    engine = upgrade_ledger(f"sqlite:///{path}")
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set; PostgreSQL variant skipped")
    name = f"paysight_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    engine = upgrade_ledger(url)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _fresh_pg(url: str) -> Engine:
    engine = make_engine(url)
    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    return engine


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> Iterator[Engine]:
    if request.param == "sqlite":
        path = tmp_path / "ledger.sqlite"
        shutil.copy(sqlite_template, path)
        eng = make_engine(f"sqlite:///{path}")
    else:
        eng = _fresh_pg(request.getfixturevalue("pg_url"))
    yield eng
    eng.dispose()


@pytest.fixture
def ledger(engine: Engine) -> Engine:
    """A migrated ledger with the demo catalog loaded."""
    load_catalog(engine, DEMO_CATALOG, now=CATALOG_AT)
    return engine


def _new_customer(engine: Engine, **kw: object) -> int:
    args: dict[str, object] = {
        "name": "Acme Analytics Pvt Ltd",
        "state_code": "29",
        "currency": "INR",
        "now": CATALOG_AT,
    }
    args.update(kw)
    return create_customer(engine, **args)["id"]  # type: ignore[arg-type]


def _count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


@pytest.fixture
def new_customer():  # type: ignore[no-untyped-def]
    """new_customer(engine, **overrides) -> customer id (Karnataka, INR by default)."""
    return _new_customer


@pytest.fixture
def count():  # type: ignore[no-untyped-def]
    """count(engine, table) -> number of rows."""
    return _count


# A small catalog for exact-arithmetic tests (the Stripe and Kill Bill proration examples,
# the 12% -> 5% slab change on SAC 996311) next to the demo one.
TEST_CATALOG = {
    "supplier": {"legal_name": "Test Supplier", "gstin": "29AAGCP4231K1Z7"},
    "products": [
        {"code": "app", "name": "App", "sac": "997331"},
        {"code": "stay", "name": "Offsite stay", "sac": "996311"},
    ],
    "plans": [
        {"code": "basic-10", "product": "app", "interval": "month", "prices": {"INR": "10.00"}},
        {"code": "pro-20", "product": "app", "interval": "month", "prices": {"INR": "20.00"}},
        {"code": "max-30", "product": "app", "interval": "month", "prices": {"INR": "30.00"}},
        {"code": "yearly-10", "product": "app", "interval": "year", "prices": {"INR": "10.00"}},
        {"code": "retreat", "product": "stay", "interval": "month", "prices": {"INR": "1000.00"}},
    ],
    "coupons": [],
}


@pytest.fixture
def small(engine: Engine) -> Engine:
    """A migrated ledger with TEST_CATALOG loaded."""
    load_catalog(engine, TEST_CATALOG, now=CATALOG_AT)
    return engine
