"""End-to-end flow on the demo catalog: subscribe, bill, renew, rerun."""

from __future__ import annotations

from datetime import UTC, datetime

from billing_jobs.service import create_subscription, get_invoice, run_billing


def test_subscribe_bill_and_renew(ledger, new_customer, count):
    cid = new_customer(ledger)
    start = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)
    sub = create_subscription(ledger, customer_id=cid, plan="scale-monthly", start=start)
    assert sub["status"] == "active"
    assert count(ledger, "invoices") == 1
    res = run_billing(ledger, datetime(2026, 3, 15, tzinfo=UTC))
    assert res.invoices_created == 2
    again = run_billing(ledger, datetime(2026, 3, 15, tzinfo=UTC))
    assert again.invoices_created == 0
    inv = get_invoice(ledger, res.invoice_ids[0])
    assert inv["number"].startswith("INV/2526/")
    assert inv["taxable_minor"] == 999900
    assert inv["cgst_minor"] == inv["sgst_minor"] == 89991
