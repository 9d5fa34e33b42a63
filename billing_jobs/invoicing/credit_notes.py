"""Credit notes with GST reversed (downgrades, cancellations, refunds) and customer credit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import Any

from sqlalchemy import Connection, func, select

from billing_jobs.errors import InvalidTransitionError, NotFoundError, ValidationError
from billing_jobs.inputs import ledger_ref
from billing_jobs.invoicing.numbering import allocate_numbers
from billing_jobs.ledger import schema as s
from billing_jobs.ledger.rawsql import is_sqlite, ph, to_db
from billing_jobs.ledger.serialize import row_dict
from billing_jobs.ledger.session import Target, write_conn
from billing_jobs.money import allocate_minor, round_fraction
from billing_jobs.periods import financial_year, require_aware
from billing_jobs.tax.gst import Regime, compute_line_taxes


@dataclass(frozen=True, slots=True)
class CreditLine:
    """A credited taxable value; negative lines net against positive ones (downgrades).
    `discount_minor` is the discount reversed with it: the line's value before discount is
    taxable + discount (shown on the credit note, as on the invoice)."""

    description: str
    sac: str
    taxable_minor: int
    tax_rate_bp: int
    invoice_line_id: int | None = None
    discount_minor: int = 0

    @property
    def amount_minor(self) -> int:
        return self.taxable_minor + self.discount_minor


def _invoice(conn: Connection, invoice_id: int) -> Any:
    row = conn.execute(select(s.invoices).where(s.invoices.c.id == invoice_id)).first()
    if row is None:
        raise NotFoundError(f"invoice {invoice_id} does not exist")
    return row


def _fit(
    lines: Sequence[CreditLine], remaining: int, regime: Regime
) -> tuple[list[CreditLine], list[Any], int]:
    """The lines (scaled down if they would credit more than `remaining`), their taxes and
    the note's total."""
    taxable = [x.taxable_minor for x in lines]
    taxes = compute_line_taxes([(x.taxable_minor, x.tax_rate_bp) for x in lines], regime)
    total = sum(taxable) + sum(t.total_minor for t in taxes)
    if total <= remaining:
        return list(lines), taxes, total
    # Never credit more than is left: scale the lines down, then trim the largest line a
    # paisa at a time until rounding no longer overshoots.
    ratio = Fraction(max(remaining, 0), total)
    taxable = [round_fraction(t * ratio) for t in taxable]
    while True:
        taxes = compute_line_taxes(
            [(t, x.tax_rate_bp) for t, x in zip(taxable, lines, strict=True)], regime
        )
        total = sum(taxable) + sum(t.total_minor for t in taxes)
        if total <= remaining:
            break
        biggest = max(range(len(taxable)), key=lambda i: taxable[i])
        taxable[biggest] -= 1
    scaled = [
        CreditLine(
            x.description, x.sac, a, x.tax_rate_bp, x.invoice_line_id,
            round_fraction(x.discount_minor * ratio),
        )
        for x, a in zip(lines, taxable, strict=True)
    ]  # fmt: skip
    return scaled, taxes, total


def issue_credit_note(
    conn: Connection,
    invoice_id: int,
    lines: Sequence[CreditLine],
    *,
    reason: str,
    at: datetime,
    destination: str = "credit_balance",
    memo: str | None = None,
    also_against: Sequence[int] = (),
) -> dict[str, Any]:
    """Write a numbered credit note against an open or paid invoice, reversing GST with the
    invoice's regime and rates. An open invoice's amount due is reduced first; the rest goes
    to the customer's credit balance (or is marked for refund).

    The note never credits more than is left on the invoice, plus what is left on
    `also_against` (the other invoices of the same billing period: unused time of an item
    charged by a proration invoice is credited on a note against the period's invoice);
    the credited amount is booked on those invoices in that order."""
    at = require_aware(at, "at")
    if destination not in ("credit_balance", "refund"):
        raise ValidationError("destination must be credit_balance or refund")
    inv = _invoice(conn, invoice_id)
    if inv.status not in ("open", "paid"):
        raise InvalidTransitionError(
            f"cannot credit invoice {inv.number or invoice_id}: it is {inv.status}; "
            "only open or paid invoices take credit notes"
        )
    if not lines:
        raise ValidationError("a credit note needs at least one line")
    if sum(x.taxable_minor for x in lines) <= 0:
        raise ValidationError("a credit note must credit a positive amount")
    booked = [inv, *(_invoice(conn, i) for i in also_against if i != invoice_id)]
    remaining = sum(b.total_minor - b.amount_credited_minor for b in booked)
    lines, taxes, total = _fit(lines, remaining, Regime(inv.tax_regime))
    if total <= 0:
        raise ValidationError(f"invoice {inv.number} has nothing left to credit")
    fy = financial_year(at)
    (number,) = allocate_numbers(conn, "CN", fy, 1)
    cgst = sum(t.cgst_minor for t in taxes)
    sgst = sum(t.sgst_minor for t in taxes)
    igst = sum(t.igst_minor for t in taxes)
    # Plain DBAPI statements from here (SQLAlchemy's per-statement cost exceeded these
    # writes in bulk callers); timestamps in SQLAlchemy's stored form (rawsql.to_db).
    sq, p = is_sqlite(conn), ph(conn)
    stamp = to_db(sq, at)
    ((cn_id,),) = _dbapi(
        conn,
        "INSERT INTO credit_notes (invoice_id, customer_id, number, financial_year, reason,"
        " destination, currency, taxable_minor, cgst_minor, sgst_minor, igst_minor, tax_minor,"
        f" total_minor, memo, issued_at) VALUES ({', '.join([p] * 15)}) RETURNING id",
        [(invoice_id, inv.customer_id, number, fy, reason, destination, inv.currency,
          sum(x.taxable_minor for x in lines), cgst, sgst, igst, cgst + sgst + igst, total,
          memo, stamp)],
    )  # fmt: skip
    _dbapi(
        conn,
        "INSERT INTO credit_note_lines (credit_note_id, invoice_line_id, description, sac,"
        " taxable_minor, tax_rate_bp, cgst_minor, sgst_minor, igst_minor, amount_minor,"
        f" discount_minor) VALUES ({', '.join([p] * 11)})",
        [(cn_id, x.invoice_line_id, x.description, x.sac, x.taxable_minor, x.tax_rate_bp,
          t.cgst_minor, t.sgst_minor, t.igst_minor, x.amount_minor, x.discount_minor)
         for x, t in zip(lines, taxes, strict=True)],
    )  # fmt: skip
    reduce_due = _book(conn, booked, total, stamp)
    to_balance = total - reduce_due
    if to_balance and destination == "credit_balance":
        _dbapi(
            conn,
            "INSERT INTO customer_balance_transactions (customer_id, currency, amount_minor,"
            f" kind, invoice_id, credit_note_id, created_at) VALUES ({', '.join([p] * 7)})",
            [(inv.customer_id, inv.currency, to_balance, f"credit_note_{reason}", invoice_id,
              cn_id, stamp)],
        )  # fmt: skip
    return get_credit_note(conn, cn_id)


def _book(conn: Connection, invoices: Sequence[Any], total: int, stamp: Any) -> int:
    """Book `total` as credited on `invoices` in order, each up to what is left on it (the
    caller never credits more than all of them have left), reducing what open ones still
    have due; returns the due reduced."""
    p, left, reduced = ph(conn), total, 0
    for inv in invoices:
        part = min(left, inv.total_minor - inv.amount_credited_minor)
        if part <= 0:
            continue
        left -= part
        reduce_due = min(part, inv.amount_due_minor - inv.amount_paid_minor)
        reduce_due = max(reduce_due, 0) if inv.status == "open" else 0
        values: dict[str, Any] = {"amount_credited_minor": inv.amount_credited_minor + part}
        if reduce_due:
            values["amount_due_minor"] = inv.amount_due_minor - reduce_due
            if values["amount_due_minor"] <= inv.amount_paid_minor:
                values["status"], values["paid_at"] = "paid", stamp
        _dbapi(
            conn,
            f"UPDATE invoices SET {', '.join(f'{c} = {p}' for c in values)} WHERE id = {p}",
            [(*values.values(), inv.id)],
        )
        reduced += reduce_due
    return reduced


def _dbapi(conn: Connection, sql: str, rows: Sequence[Sequence[Any]]) -> list[Any]:
    """Run `sql` once per row on the connection's DBAPI cursor, inside the caller's
    transaction; the rows a single statement returns (RETURNING)."""
    if not conn.in_transaction():
        conn.begin()  # what SQLAlchemy's autobegin would do before its first statement
    cur = conn.connection.cursor()
    try:
        if len(rows) == 1:
            cur.execute(sql, tuple(rows[0]))
            return cur.fetchall() if cur.description else []
        if rows:
            cur.executemany(sql, [tuple(r) for r in rows])
        return []
    finally:
        cur.close()


def create_credit_note(
    target: Target,
    invoice_id: int,
    *,
    at: datetime,
    amount_minor: int | None = None,
    reason: str = "refund",
    destination: str = "credit_balance",
    memo: str | None = None,
) -> dict[str, Any]:
    """Credit `amount_minor` of taxable value (default: all that is left), spread over the
    invoice's lines pro rata, with GST reversed."""
    with write_conn(target) as conn:
        inv = _invoice(conn, invoice_id)
        lines = conn.execute(
            select(s.invoice_lines)
            .where(s.invoice_lines.c.invoice_id == invoice_id)
            .order_by(s.invoice_lines.c.position)
        ).all()
        positive = [max(x.taxable_minor, 0) for x in lines]
        credited_fraction = (
            Fraction(inv.amount_credited_minor, inv.total_minor) if inv.total_minor else 1
        )
        left = round_fraction(inv.taxable_minor * (1 - credited_fraction))
        if amount_minor is None:
            amount_minor = left
        if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
            raise ValidationError("amount_minor must be an integer count of minor units")
        if amount_minor <= 0:
            raise ValidationError(f"credit amount must be positive, got {amount_minor}")
        if amount_minor > left:
            raise ValidationError(
                f"cannot credit {amount_minor}: only {left} of taxable value is left on "
                f"invoice {inv.number}"
            )
        if sum(positive) == 0:
            raise ValidationError(f"invoice {inv.number} has no positive lines to credit")
        parts = allocate_minor(amount_minor, positive)
        credit_lines = [
            CreditLine(f"Credit: {x.description}", x.sac, p, x.tax_rate_bp, x.id)
            for x, p in zip(lines, parts, strict=True)
            if p
        ]
        return issue_credit_note(
            conn,
            invoice_id,
            credit_lines,
            reason=reason,
            at=at,
            destination=destination,
            memo=memo,
        )


def get_credit_note(target: Target, credit_note_id: int) -> dict[str, Any]:
    with write_conn(target) as conn:
        row = conn.execute(
            select(s.credit_notes).where(s.credit_notes.c.id == credit_note_id)
        ).first()
        if row is None:
            raise NotFoundError(f"credit note {credit_note_id} does not exist")
        out = row_dict(row)
        out["invoice_number"] = conn.execute(
            select(s.invoices.c.number).where(s.invoices.c.id == row.invoice_id)
        ).scalar()
        b = s.customer_balance_transactions
        # What went to the customer's balance; the rest reduced what open invoices had due.
        out["to_balance_minor"] = int(
            conn.execute(
                select(func.coalesce(func.sum(b.c.amount_minor), 0)).where(
                    b.c.credit_note_id == credit_note_id, b.c.amount_minor > 0
                )
            ).scalar_one()
        )
        out["lines"] = [
            row_dict(r)
            for r in conn.execute(
                select(s.credit_note_lines)
                .where(s.credit_note_lines.c.credit_note_id == credit_note_id)
                .order_by(s.credit_note_lines.c.id)
            )
        ]
        return out


def find_credit_note_id(target: Target, ref: str | int) -> int:
    """The id of the credit note `ref` names: its id, or its number (CN/2627/000001)."""
    cn = s.credit_notes
    key = ledger_ref(ref)
    with write_conn(target) as conn:
        if key is not None:
            row = conn.execute(select(cn.c.id).where(cn.c.id == key)).first()
        else:
            row = conn.execute(select(cn.c.id).where(cn.c.number == str(ref))).first()
    if row is None:
        raise NotFoundError(f"no credit note {'numbered ' if key is None else ''}{ref!r}")
    return int(row.id)


def list_credit_notes(
    target: Target,
    *,
    customer_id: int | None = None,
    invoice_id: int | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Credit notes by id with the number of the invoice each one credits."""
    cn, inv = s.credit_notes, s.invoices
    q = (
        select(cn, inv.c.number.label("invoice_number"))
        .join(inv, inv.c.id == cn.c.invoice_id)
        .order_by(cn.c.id)
        .limit(limit)
        .offset(offset)
    )
    if customer_id is not None:
        q = q.where(cn.c.customer_id == customer_id)
    if invoice_id is not None:
        q = q.where(cn.c.invoice_id == invoice_id)
    with write_conn(target) as conn:
        return [row_dict(r) for r in conn.execute(q)]
