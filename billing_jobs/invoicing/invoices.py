"""Invoice status changes (finalize, pay, void, uncollectible) and lookup."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from billing_jobs.customers import credit_balance
from billing_jobs.errors import InvalidTransitionError, NotFoundError, ValidationError
from billing_jobs.inputs import ledger_ref
from billing_jobs.invoicing.numbering import allocate_numbers
from billing_jobs.ledger import schema as s
from billing_jobs.ledger.serialize import row_dict
from billing_jobs.ledger.session import Target, write_conn
from billing_jobs.periods import financial_year, require_aware

INVOICE_TRANSITIONS = {
    "draft": {"open"},
    "open": {"paid", "void", "uncollectible"},
    "uncollectible": {"paid", "void"},
    "paid": set(),
    "void": set(),
}


def lock_invoice(conn: Connection, invoice_id: int) -> Any:
    """The invoice row, locked for the rest of the transaction (FOR UPDATE on PostgreSQL; on
    SQLite BEGIN IMMEDIATE already holds the write lock)."""
    q = select(s.invoices).where(s.invoices.c.id == invoice_id).with_for_update()
    row = conn.execute(q).first()
    if row is None:
        raise NotFoundError(f"invoice {invoice_id} does not exist")
    return row


def _check(inv: Any, target: str) -> None:
    if target not in INVOICE_TRANSITIONS[inv.status]:
        raise InvalidTransitionError(
            f"invoice {inv.number or inv.id} is {inv.status}; cannot move it to {target}"
        )


def finalize_invoice(target: Target, invoice_id: int, *, at: datetime) -> dict[str, Any]:
    """draft -> open: apply customer credit, allocate the next number of the invoice date's
    financial year (in this transaction, so the series stays gapless)."""
    at = require_aware(at, "at")
    with write_conn(target) as conn:
        inv = lock_invoice(conn, invoice_id)
        _check(inv, "open")
        fy = financial_year(inv.issued_at)
        prefix = conn.execute(
            select(s.settings.c.value).where(s.settings.c.key == "invoice_prefix")
        ).scalar()
        (number,) = allocate_numbers(conn, prefix or "INV", fy, 1)
        credit = max(0, min(credit_balance(conn, inv.customer_id, inv.currency), inv.total_minor))
        due = inv.total_minor - credit
        conn.execute(
            update(s.invoices)
            .where(s.invoices.c.id == invoice_id)
            .values(
                status="paid" if due == 0 else "open",
                number=number,
                financial_year=fy,
                credit_applied_minor=credit,
                amount_due_minor=due,
                finalized_at=at,
                paid_at=at if due == 0 else None,
            )
        )
        if credit:
            conn.execute(
                insert(s.customer_balance_transactions),
                {
                    "customer_id": inv.customer_id,
                    "currency": inv.currency,
                    "amount_minor": -credit,
                    "kind": "applied_to_invoice",
                    "invoice_id": invoice_id,
                    "credit_note_id": None,
                    "created_at": at,
                },
            )
        return get_invoice(conn, invoice_id)


def mark_invoice_paid(
    target: Target, invoice_id: int, *, at: datetime, amount_minor: int | None = None
) -> dict[str, Any]:
    """Record full payment of an open (or uncollectible) invoice."""
    at = require_aware(at, "at")
    with write_conn(target) as conn:
        inv = lock_invoice(conn, invoice_id)
        _check(inv, "paid")
        amount = inv.amount_due_minor if amount_minor is None else amount_minor
        if amount != inv.amount_due_minor - inv.amount_paid_minor:
            raise InvalidTransitionError(
                f"invoice {inv.number} needs {inv.amount_due_minor - inv.amount_paid_minor} "
                f"to be paid, got {amount}"
            )
        conn.execute(
            update(s.invoices)
            .where(s.invoices.c.id == invoice_id)
            .values(status="paid", amount_paid_minor=inv.amount_paid_minor + amount, paid_at=at)
        )
        return get_invoice(conn, invoice_id)


def void_invoice(target: Target, invoice_id: int, *, at: datetime) -> dict[str, Any]:
    """open|uncollectible -> void. The number stays used (the series is gapless); customer
    credit that the invoice consumed is given back."""
    at = require_aware(at, "at")
    with write_conn(target) as conn:
        inv = lock_invoice(conn, invoice_id)
        _check(inv, "void")
        if inv.amount_paid_minor:
            raise InvalidTransitionError(
                f"invoice {inv.number} has payments; issue a credit note instead of voiding"
            )
        conn.execute(
            update(s.invoices)
            .where(s.invoices.c.id == invoice_id)
            .values(status="void", voided_at=at)
        )
        if inv.credit_applied_minor:
            conn.execute(
                insert(s.customer_balance_transactions),
                {
                    "customer_id": inv.customer_id,
                    "currency": inv.currency,
                    "amount_minor": inv.credit_applied_minor,
                    "kind": "returned_from_void",
                    "invoice_id": invoice_id,
                    "credit_note_id": None,
                    "created_at": at,
                },
            )
        return get_invoice(conn, invoice_id)


def mark_uncollectible(target: Target, invoice_id: int, *, at: datetime) -> dict[str, Any]:
    """open -> uncollectible (a bad debt; it may still be paid or voided later)."""
    require_aware(at, "at")
    with write_conn(target) as conn:
        inv = lock_invoice(conn, invoice_id)
        _check(inv, "uncollectible")
        conn.execute(
            update(s.invoices).where(s.invoices.c.id == invoice_id).values(status="uncollectible")
        )
        return get_invoice(conn, invoice_id)


def get_invoice(target: Target, invoice_id: int) -> dict[str, Any]:
    """The invoice with its lines and credit notes, JSON-serializable."""
    with write_conn(target) as conn:
        row = conn.execute(select(s.invoices).where(s.invoices.c.id == invoice_id)).first()
        if row is None:
            raise NotFoundError(f"invoice {invoice_id} does not exist")
        out = row_dict(row)
        out["lines"] = [
            row_dict(r)
            for r in conn.execute(
                select(s.invoice_lines)
                .where(s.invoice_lines.c.invoice_id == invoice_id)
                .order_by(s.invoice_lines.c.position)
            )
        ]
        out["credit_notes"] = [
            r.number
            for r in conn.execute(
                select(s.credit_notes.c.number)
                .where(s.credit_notes.c.invoice_id == invoice_id)
                .order_by(s.credit_notes.c.id)
            )
        ]
        return out


INVOICE_STATUSES = tuple(INVOICE_TRANSITIONS)


def find_invoice_id(target: Target, ref: str | int) -> int:
    """The id of the invoice `ref` names: its id, or its number (INV/2627/000001)."""
    key = ledger_ref(ref)
    with write_conn(target) as conn:
        if key is not None:
            row = conn.execute(select(s.invoices.c.id).where(s.invoices.c.id == key)).first()
        else:
            row = conn.execute(
                select(s.invoices.c.id).where(s.invoices.c.number == str(ref))
            ).first()
    if row is None:
        raise NotFoundError(f"no invoice {'numbered ' if key is None else ''}{ref!r}")
    return int(row.id)


def list_invoices(
    target: Target,
    *,
    customer_id: int | None = None,
    subscription_id: int | None = None,
    status: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Invoices by id (newest last) without their lines: number, kind, status, amounts."""
    if status is not None and status not in INVOICE_STATUSES:
        raise ValidationError(
            f"unknown invoice status {status!r}; choose one of {', '.join(INVOICE_STATUSES)}"
        )
    t = s.invoices
    q = select(t).order_by(t.c.id).limit(limit).offset(offset)
    for col, value in ((t.c.customer_id, customer_id), (t.c.subscription_id, subscription_id),
                       (t.c.status, status)):  # fmt: skip
        if value is not None:
            q = q.where(col == value)
    with write_conn(target) as conn:
        return [row_dict(r) for r in conn.execute(q)]
