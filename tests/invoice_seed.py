"""Finalized invoices written through the ledger's own code, for document and mail tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Engine, text

from billing_jobs.customers import create_customer
from billing_jobs.invoicing.builder import CustomerTax, LineInput, build_invoice
from billing_jobs.invoicing.store import insert_invoices


def seed_invoice(
    engine: Engine,
    i: int,
    *,
    name: str,
    email: str | None,
    locale: str,
    lines: Sequence[LineInput],
    issued_at: datetime,
    created_at: datetime,
) -> int:
    """A new customer (Maharashtra for even `i`, Karnataka for odd: inter- and intra-state
    supplies) and one finalized invoice of `lines` for them; the invoice id."""
    with engine.connect() as conn:
        supplier = conn.execute(
            text("select value from ledger_settings where key = 'supplier_gstin'")
        ).scalar_one()
        conn.rollback()
    state = "29" if i % 2 else "27"
    cid = create_customer(
        engine,
        name=name,
        state_code=state,
        currency="INR",
        now=created_at,
        email=email,
        address_line="12 Anna Salai",
        city="Chennai",
        locale=locale,
    )["id"]
    draft = build_invoice(
        kind="recurring",
        customer_id=cid,
        subscription_id=None,
        currency="INR",
        issued_at=issued_at,
        lines=list(lines),
        customer=CustomerTax(state, None, "regular"),
        supplier_gstin=supplier,
    )
    with engine.begin() as conn:
        (invoice_id,) = insert_invoices(conn, [draft], finalize=True, created_at=created_at)
    return invoice_id


def billed_customers(engine: Engine, count: int, start: datetime, billed_at: datetime) -> None:
    """The demo catalog, `count` Karnataka customers on growth-monthly from `start` (no
    e-mail), and a billing run at `billed_at`: finalized invoices through the real run."""
    from billing_jobs.catalog import DEMO_CATALOG, load_catalog
    from billing_jobs.ledger import upgrade_ledger
    from billing_jobs.subscriptions.billing_run import run_billing
    from billing_jobs.subscriptions.service import create_subscription

    upgrade_ledger(engine)
    load_catalog(engine, DEMO_CATALOG, now=start)
    for i in range(count):
        cid = create_customer(
            engine, name=f"Acme {i}", state_code="29", currency="INR", now=start, email=None
        )["id"]
        create_subscription(engine, customer_id=cid, plan="growth-monthly", start=start)
    run_billing(engine, billed_at)
