"""What each item in force was charged for its billing period (`subscription_charges`).

A recurring invoice opens one charge per line at the price it actually charged (list amount,
its share of the coupon discount, taxable value, all for the whole period). A prorated change
closes the changed items' charges and opens charges for their replacements at the price the
period's invoice would have charged for them; pause and cancel close what is left. Unused
time is always credited from the open charges: on the items in force at that instant, at the
price paid, and once (a closed charge is never credited again).

Rounding (see docs/operations.md, "How credits are computed"): with the per-second factor
f = (period_end - t) / (period_end - period_start), the unused part of a charge is
amount' = round_half_up(amount x f) and taxable' = round_half_up(taxable x f), and its
discount is amount' - taxable' (so amount - discount = taxable holds on every line).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import Any

from sqlalchemy import Connection, func, select

from billing_jobs.catalog.snapshot import CatalogSnapshot, CouponInfo
from billing_jobs.invoicing.builder import DraftInvoice, allocate_discount, coupon_discount
from billing_jobs.ledger import schema as s
from billing_jobs.ledger.rawsql import from_db, is_sqlite, ph, sql_insert, sql_many, sql_rows, to_db
from billing_jobs.subscriptions.lifecycle import SubState
from billing_jobs.subscriptions.proration import prorate_minor


@dataclass(frozen=True, slots=True)
class PeriodPrice:
    """One item's price for a whole billing period, as charged."""

    amount_minor: int  # list price x quantity
    discount_minor: int  # its share of the period's discount

    @property
    def taxable_minor(self) -> int:
        return self.amount_minor - self.discount_minor

    def unused(self, factor: Fraction) -> PeriodPrice:
        """The part of this price for the unused fraction `factor` of the period."""
        amount = prorate_minor(self.amount_minor, factor)
        return PeriodPrice(amount, amount - prorate_minor(self.taxable_minor, factor))


@dataclass(frozen=True, slots=True)
class Charge:
    """An open `subscription_charges` row."""

    id: int
    plan_id: int
    quantity: int
    price: PeriodPrice
    tax_rate_bp: int
    invoice_id: int | None
    invoice_line_id: int | None


_COLS = (
    "subscription_id", "plan_id", "quantity", "currency", "period_start", "period_end",
    "charged_from", "amount_minor", "discount_minor", "taxable_minor", "tax_rate_bp",
    "invoice_id", "invoice_line_id",
)  # fmt: skip


def record_invoiced(
    conn: Connection, drafts: Sequence[DraftInvoice], ids: Sequence[int], line_ids: Sequence[Any]
) -> None:
    """Open a charge for every recurring line of freshly inserted recurring invoices."""
    sq = is_sqlite(conn)
    rows = []
    for d, inv_id, lids in zip(drafts, ids, line_ids, strict=True):
        if d.kind != "recurring" or d.subscription_id is None:
            continue
        for x, line_id in zip(d.lines, lids, strict=True):
            if x.kind != "recurring" or x.plan_id is None:
                continue
            rows.append(
                (
                    d.subscription_id, x.plan_id, x.quantity, d.currency,
                    to_db(sq, x.period_start), to_db(sq, x.period_end),
                    to_db(sq, x.period_start), x.amount_minor, x.discount_minor,
                    x.taxable_minor, x.tax_rate_bp, inv_id, line_id,
                )
            )  # fmt: skip
    if rows:
        sql_insert(conn, "subscription_charges", _COLS, rows)


def open_charges(
    conn: Connection,
    st: SubState,
    at: datetime,
    charges: Sequence[tuple[int, int, PeriodPrice, int, int | None, int | None]],
) -> None:
    """Open charges (plan_id, quantity, price, rate, invoice_id, line_id) from `at` to the end
    of the current period."""
    sq = is_sqlite(conn)
    ps, pe = to_db(sq, st.current_period_start), to_db(sq, st.current_period_end)
    sql_insert(
        conn,
        "subscription_charges",
        _COLS,
        [
            (st.id, pid, qty, st.currency, ps, pe, to_db(sq, at), p.amount_minor,
             p.discount_minor, p.taxable_minor, rate, inv_id, line_id)
            for pid, qty, p, rate, inv_id, line_id in charges
        ],
    )  # fmt: skip


def close_charges(
    conn: Connection,
    charge_ids: Sequence[int],
    at: datetime,
    *,
    credit_invoice_id: int | None = None,
    credit_note_id: int | None = None,
) -> None:
    """Mark charges as credited from `at` on (by that invoice line or credit note, if any)."""
    p = ph(conn)
    sql_many(
        conn,
        f"UPDATE subscription_charges SET credited_from = {p}, credit_invoice_id = {p}, "
        f"credit_note_id = {p} WHERE id = {p} AND credited_from IS NULL",
        [(to_db(is_sqlite(conn), at), credit_invoice_id, credit_note_id, i) for i in charge_ids],
    )


def charges_in_force(conn: Connection, st: SubState) -> dict[int, Charge]:
    """Open charges of the current period by plan id (those of a voided invoice were never
    charged, so they are not in force)."""
    p = ph(conn)
    rows = sql_rows(
        conn,
        "SELECT c.id, c.plan_id, c.quantity, c.amount_minor, c.discount_minor, c.tax_rate_bp,"
        " c.invoice_id, c.invoice_line_id FROM subscription_charges c"
        " LEFT JOIN invoices i ON i.id = c.invoice_id"
        f" WHERE c.subscription_id = {p} AND c.period_start = {p} AND c.credited_from IS NULL"
        " AND (i.status IS NULL OR i.status <> 'void') ORDER BY c.id",
        (st.id, to_db(is_sqlite(conn), st.current_period_start)),
    )
    return {
        pid: Charge(cid, pid, qty, PeriodPrice(amount, discount), rate, inv, line)
        for cid, pid, qty, amount, discount, rate, inv, line in rows
    }


def recurring_invoice_row(conn: Connection, st: SubState) -> Any:
    """The current period's recurring invoice, if it was issued."""
    q = select(s.invoices).where(
        s.invoices.c.subscription_id == st.id,
        s.invoices.c.kind == "recurring",
        s.invoices.c.period_start == st.current_period_start,
    )
    return conn.execute(q).first()


def period_coupon(catalog: CatalogSnapshot, st: SubState, recurring: Any) -> CouponInfo | None:
    """The coupon that discounted this period's recurring invoice (None if it had none)."""
    if recurring is None or not recurring.discount_minor or not st.coupon_id:
        return None
    return catalog.coupons.get(st.coupon_id)


def period_prices(
    catalog: CatalogSnapshot,
    currency: str,
    items: Sequence[tuple[int, int]],
    coupon: CouponInfo | None,
) -> dict[int, PeriodPrice]:
    """What the period's recurring invoice would charge each of `items` for the whole period:
    the same coupon discount on the same subtotal, allocated over the lines the same way."""
    amounts = [catalog.plan(pid).amount(currency, qty) for pid, qty in items]
    discount = coupon_discount(coupon, sum(amounts), currency) if coupon else 0
    shares = allocate_discount(amounts, discount)
    return {pid: PeriodPrice(a, d) for (pid, _), a, d in zip(items, amounts, shares, strict=True)}


def period_invoices(conn: Connection, st: SubState, recurring_id: int) -> list[int]:
    """The current period's invoices that a credit of unused time may be booked on: the
    recurring one first, then its proration invoices (oldest first)."""
    p = ph(conn)
    rows = sql_rows(
        conn,
        f"SELECT id FROM invoices WHERE subscription_id = {p} AND period_end = {p}"
        f" AND kind = 'proration' AND status IN ('open', 'paid') AND id <> {p} ORDER BY id",
        (st.id, to_db(is_sqlite(conn), st.current_period_end), recurring_id),
    )
    return [recurring_id, *(r[0] for r in rows)]


def creditable_minor(conn: Connection, invoice_ids: Sequence[int]) -> int:
    """What is left to credit on these invoices (total less what notes already credited)."""
    t = s.invoices
    q = select(func.coalesce(func.sum(t.c.total_minor - t.c.amount_credited_minor), 0)).where(
        t.c.id.in_(list(invoice_ids))
    )
    return int(conn.execute(q).scalar_one())


def charges_of(conn: Connection, sub_id: int) -> list[dict[str, Any]]:
    """Every charge of a subscription (oldest first), for `subscriptions show` and audits."""
    t = s.subscription_charges
    rows = conn.execute(
        select(t, s.plans.c.code.label("plan"))
        .join(s.plans, s.plans.c.id == t.c.plan_id)
        .where(t.c.subscription_id == sub_id)
        .order_by(t.c.id)
    ).all()
    out = []
    for r in rows:
        d = dict(r._mapping)
        for k in ("period_start", "period_end", "charged_from", "credited_from"):
            d[k] = from_db(d[k]).isoformat() if d[k] is not None else None  # type: ignore[union-attr]
        out.append(d)
    return out
