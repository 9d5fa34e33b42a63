"""Credit notes (GST reversed), void, uncollectible, and customer credit consumption."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from billing_jobs.errors import InvalidTransitionError, ValidationError
from billing_jobs.ledger import schema as s
from billing_jobs.service import (
    create_credit_note,
    create_subscription,
    get_customer,
    get_invoice,
    mark_invoice_paid,
    mark_uncollectible,
    run_billing,
    void_invoice,
)

JAN = datetime(2026, 1, 5, tzinfo=UTC)


def _first_invoice(engine, new_customer, **customer):
    cid = new_customer(engine, **customer)
    sub = create_subscription(engine, customer_id=cid, plan="scale-monthly", start=JAN)
    with engine.connect() as conn:
        inv_id = conn.execute(
            select(s.invoices.c.id).where(s.invoices.c.subscription_id == sub["id"])
        ).scalar_one()
    return cid, get_invoice(engine, inv_id)


def test_refund_credit_note_reverses_gst_and_funds_next_invoice(ledger, new_customer) -> None:
    cid, inv = _first_invoice(ledger, new_customer, state_code="27", gstin="27AAPFU0939F1ZV")
    mark_invoice_paid(ledger, inv["id"], at=JAN)
    note = create_credit_note(ledger, inv["id"], at=JAN, amount_minor=100000, reason="refund")
    assert note["number"] == "CN/2526/000001"
    assert note["taxable_minor"] == 100000 and note["igst_minor"] == 18000
    assert note["total_minor"] == 118000 and note["lines"][0]["tax_rate_bp"] == 1800
    assert get_customer(ledger, cid)["credit_balance_minor"] == 118000
    assert get_invoice(ledger, inv["id"])["credit_notes"] == ["CN/2526/000001"]
    run_billing(ledger, datetime(2026, 2, 6, tzinfo=UTC))
    with ledger.connect() as conn:
        feb = conn.execute(
            select(s.invoices).where(s.invoices.c.customer_id == cid).order_by(s.invoices.c.id)
        ).all()[-1]
    assert feb.credit_applied_minor == 118000
    assert feb.amount_due_minor == feb.total_minor - 118000
    assert get_customer(ledger, cid)["credit_balance_minor"] == 0


def test_cannot_credit_more_than_invoiced(ledger, new_customer) -> None:
    _, inv = _first_invoice(ledger, new_customer)
    with pytest.raises(ValidationError, match="only 999900"):
        create_credit_note(ledger, inv["id"], at=JAN, amount_minor=999901)
    full = create_credit_note(ledger, inv["id"], at=JAN)
    assert full["total_minor"] == inv["total_minor"]
    assert get_invoice(ledger, inv["id"])["status"] == "paid"  # nothing left due
    with pytest.raises(ValidationError, match="only 0"):
        create_credit_note(ledger, inv["id"], at=JAN, amount_minor=1)


@pytest.mark.parametrize("bad", [0, -5, "100"])
def test_credit_amount_must_be_positive_int(ledger, new_customer, bad) -> None:
    _, inv = _first_invoice(ledger, new_customer)
    with pytest.raises(ValidationError):
        create_credit_note(ledger, inv["id"], at=JAN, amount_minor=bad)


def test_void_keeps_number_and_returns_applied_credit(ledger, new_customer) -> None:
    cid, inv = _first_invoice(ledger, new_customer)
    mark_invoice_paid(ledger, inv["id"], at=JAN)
    create_credit_note(ledger, inv["id"], at=JAN, amount_minor=10000)
    run_billing(ledger, datetime(2026, 2, 6, tzinfo=UTC))
    with ledger.connect() as conn:
        feb_id = conn.execute(
            select(s.invoices.c.id)
            .where(s.invoices.c.customer_id == cid)
            .order_by(s.invoices.c.id.desc())
        ).first()[0]
    feb = get_invoice(ledger, feb_id)
    assert feb["credit_applied_minor"] == 11800
    voided = void_invoice(ledger, feb_id, at=datetime(2026, 2, 7, tzinfo=UTC))
    assert voided["status"] == "void" and voided["number"] == feb["number"]
    assert get_customer(ledger, cid)["credit_balance_minor"] == 11800
    with pytest.raises(InvalidTransitionError, match="void"):
        void_invoice(ledger, feb_id, at=JAN)
    with pytest.raises(InvalidTransitionError, match="paid"):
        void_invoice(ledger, inv["id"], at=JAN)
    # a voided recurring period is not billed again
    assert run_billing(ledger, datetime(2026, 2, 8, tzinfo=UTC)).invoices_created == 0


def test_uncollectible_then_paid(ledger, new_customer) -> None:
    _, inv = _first_invoice(ledger, new_customer)
    bad = mark_uncollectible(ledger, inv["id"], at=JAN)
    assert bad["status"] == "uncollectible"
    with pytest.raises(InvalidTransitionError):
        mark_uncollectible(ledger, inv["id"], at=JAN)
    paid = mark_invoice_paid(ledger, inv["id"], at=JAN)
    assert paid["status"] == "paid" and paid["amount_paid_minor"] == inv["amount_due_minor"]
    with pytest.raises(InvalidTransitionError):
        mark_uncollectible(ledger, inv["id"], at=JAN)
