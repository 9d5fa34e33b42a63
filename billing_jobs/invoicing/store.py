"""Writing computed invoices to the ledger in bulk: numbers, invoice rows, lines, credit use."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection

from billing_jobs.invoicing.builder import DraftInvoice
from billing_jobs.invoicing.numbering import allocate_numbers
from billing_jobs.ledger.rawsql import insert_many, is_sqlite, reserve_ids, to_db
from billing_jobs.periods import financial_year

_INVOICE_COLS = (
    "id", "customer_id", "subscription_id", "kind", "status", "number", "financial_year",
    "currency", "period_start", "period_end", "issued_at", "subtotal_minor", "discount_minor",
    "taxable_minor", "cgst_minor", "sgst_minor", "igst_minor", "tax_minor", "total_minor",
    "credit_applied_minor", "amount_due_minor", "amount_paid_minor", "amount_credited_minor",
    "supplier_gstin", "customer_gstin", "place_of_supply", "tax_regime", "reverse_charge",
    "finalized_at", "paid_at", "voided_at", "created_at",
)  # fmt: skip
_CREDIT_COLS = (
    "customer_id", "currency", "amount_minor", "kind", "invoice_id", "credit_note_id",
    "created_at",
)  # fmt: skip
_LINE_COLS = (
    "id",
    "invoice_id",
    "position",
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
    return insert_invoices_and_lines(
        conn, drafts, finalize=finalize, created_at=created_at, prefix=prefix
    )[0]


def insert_invoices_and_lines(
    conn: Connection,
    drafts: Sequence[DraftInvoice],
    *,
    finalize: bool,
    created_at: datetime,
    prefix: str = "INV",
) -> tuple[list[int], list[list[int]]]:
    """As `insert_invoices`, also returning each invoice's line ids (in line order)."""
    if not drafts:
        return [], []
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
    sq = is_sqlite(conn)
    ids = reserve_ids(conn, "invoices", len(drafts))
    created = to_db(sq, created_at)
    rows, lines, credits = [], [], []
    line_ids = reserve_ids(conn, "invoice_lines", sum(len(d.lines) for d in drafts))
    lines_of: list[list[int]] = []
    next_line = 0
    for i, (inv_id, d) in enumerate(zip(ids, drafts, strict=True)):
        credit = d.credit_applied_minor if finalize else 0
        due = d.total_minor - credit
        status = ("paid" if due == 0 else "open") if finalize else "draft"
        number, fy = numbers.get(i, (None, None))
        rows.append(
            (
                inv_id, d.customer_id, d.subscription_id, d.kind, status, number, fy,
                d.currency, to_db(sq, d.period_start), to_db(sq, d.period_end),
                to_db(sq, d.issued_at), d.subtotal_minor, d.discount_minor, d.taxable_minor,
                d.cgst_minor, d.sgst_minor, d.igst_minor, d.tax_minor, d.total_minor, credit,
                due, 0, 0, d.supplier_gstin, d.customer_gstin, d.place_of_supply,
                d.tax_regime, False, created if finalize else None,
                created if finalize and due == 0 else None, None, created,
            )
        )  # fmt: skip
        lines_of.append(line_ids[next_line : next_line + len(d.lines)])
        for pos, x in enumerate(d.lines):
            lines.append(
                (
                    line_ids[next_line], inv_id, pos, x.kind, x.description, x.plan_id, x.sac,
                    x.quantity, x.amount_minor, x.discount_minor, x.taxable_minor,
                    x.tax_rate_bp, x.cgst_minor, x.sgst_minor, x.igst_minor,
                    to_db(sq, x.period_start), to_db(sq, x.period_end),
                )
            )  # fmt: skip
            next_line += 1
        if credit:
            credits.append(
                (d.customer_id, d.currency, -credit, "applied_to_invoice", inv_id, None, created)
            )
    insert_many(conn, "invoices", _INVOICE_COLS, rows)
    insert_many(conn, "invoice_lines", _LINE_COLS, lines)
    insert_many(conn, "customer_balance_transactions", _CREDIT_COLS, credits)
    return ids, lines_of
