"""Writing computed invoices to the ledger in bulk: numbers, invoice rows, lines, credit use."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, insert

from billing_jobs.invoice_builder import DraftInvoice
from billing_jobs.ledger import schema as s
from billing_jobs.numbering import allocate_numbers
from billing_jobs.periods import financial_year

_LINE_COLS = (
    "kind",
    "description",
    "plan_id",
    "sac",
    "quantity",
    "amount_minor",
    "discount_minor",
    "taxable_minor",
    "tax_rate_bp",
    "cgst_minor",
    "sgst_minor",
    "igst_minor",
    "period_start",
    "period_end",
)


def insert_invoices(
    conn: Connection,
    drafts: Sequence[DraftInvoice],
    *,
    finalize: bool,
    created_at: datetime,
    prefix: str = "INV",
) -> list[int]:
    """Insert drafts (finalized: numbered and open/paid) and return their ids in order.

    Numbers are allocated in this transaction in invoice-date order, so a rollback returns
    them and a commit uses every one: the series stays gapless."""
    if not drafts:
        return []
    numbers: dict[int, tuple[str, str]] = {}
    if finalize:
        by_fy: dict[str, list[int]] = {}
        order = sorted(
            range(len(drafts)), key=lambda i: (drafts[i].issued_at, drafts[i].subscription_id or 0)
        )
        for i in order:
            by_fy.setdefault(financial_year(drafts[i].issued_at), []).append(i)
        for fy, idxs in sorted(by_fy.items()):
            for i, number in zip(idxs, allocate_numbers(conn, prefix, fy, len(idxs)), strict=True):
                numbers[i] = (number, fy)
    rows = []
    for i, d in enumerate(drafts):
        credit = d.credit_applied_minor if finalize else 0
        due = d.total_minor - credit
        status = ("paid" if due == 0 else "open") if finalize else "draft"
        number, fy = numbers.get(i, (None, None))
        rows.append(
            {
                "customer_id": d.customer_id,
                "subscription_id": d.subscription_id,
                "kind": d.kind,
                "status": status,
                "number": number,
                "financial_year": fy,
                "currency": d.currency,
                "period_start": d.period_start,
                "period_end": d.period_end,
                "issued_at": d.issued_at,
                "subtotal_minor": d.subtotal_minor,
                "discount_minor": d.discount_minor,
                "taxable_minor": d.taxable_minor,
                "cgst_minor": d.cgst_minor,
                "sgst_minor": d.sgst_minor,
                "igst_minor": d.igst_minor,
                "tax_minor": d.tax_minor,
                "total_minor": d.total_minor,
                "credit_applied_minor": credit,
                "amount_due_minor": due,
                "amount_paid_minor": 0,
                "amount_credited_minor": 0,
                "supplier_gstin": d.supplier_gstin,
                "customer_gstin": d.customer_gstin,
                "place_of_supply": d.place_of_supply,
                "tax_regime": d.tax_regime,
                "reverse_charge": False,
                "finalized_at": created_at if finalize else None,
                "paid_at": created_at if finalize and due == 0 else None,
                "voided_at": None,
                "created_at": created_at,
            }
        )
    result = conn.execute(
        insert(s.invoices).returning(s.invoices.c.id, sort_by_parameter_order=True), rows
    )
    ids = [r[0] for r in result]
    lines = []
    credits = []
    for inv_id, d, row in zip(ids, drafts, rows, strict=True):
        for pos, line in enumerate(d.lines):
            rec = {c: getattr(line, c) for c in _LINE_COLS}
            rec["invoice_id"], rec["position"] = inv_id, pos
            lines.append(rec)
        if row["credit_applied_minor"]:
            credits.append(
                {
                    "customer_id": d.customer_id,
                    "currency": d.currency,
                    "amount_minor": -row["credit_applied_minor"],
                    "kind": "applied_to_invoice",
                    "invoice_id": inv_id,
                    "credit_note_id": None,
                    "created_at": created_at,
                }
            )
    if lines:
        conn.execute(insert(s.invoice_lines), lines)
    if credits:
        conn.execute(insert(s.customer_balance_transactions), credits)
    return ids
