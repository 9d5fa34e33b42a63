"""Pure invoice arithmetic: lines, coupon discount, GST per line and invoice totals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from billing_jobs.catalog.snapshot import CouponInfo
from billing_jobs.money import allocate_minor
from billing_jobs.periods import ist_date
from billing_jobs.tax.gst import compute_line_taxes, gst_rate_bp, regime_for
from billing_jobs.tax.gst import place_of_supply as pos_for


@dataclass(frozen=True, slots=True)
class CustomerTax:
    """The customer facts GST needs."""

    state_code: str
    gstin: str | None
    tax_status: str


@dataclass(slots=True)
class LineInput:
    """A line before tax. `discount_minor` is the line's own discount (a proration at the price
    paid); an invoice-level discount is allocated on top. `tax_rate_bp` pins the GST rate
    (a credit reverses tax at the rate it was charged at); None takes the invoice date's."""

    kind: str
    description: str
    plan_id: int | None
    sac: str
    quantity: int
    amount_minor: int
    period_start: datetime | None = None
    period_end: datetime | None = None
    discount_minor: int = 0
    tax_rate_bp: int | None = None


@dataclass(slots=True)
class DraftLine:
    kind: str
    description: str
    plan_id: int | None
    sac: str
    quantity: int
    amount_minor: int
    discount_minor: int
    taxable_minor: int
    tax_rate_bp: int
    cgst_minor: int
    sgst_minor: int
    igst_minor: int
    period_start: datetime | None
    period_end: datetime | None


@dataclass
class DraftInvoice:
    """A computed invoice, not yet stored; totals always equal the sums of its lines."""

    kind: str
    customer_id: int
    subscription_id: int | None
    currency: str
    issued_at: datetime
    period_start: datetime | None
    period_end: datetime | None
    place_of_supply: str
    tax_regime: str
    supplier_gstin: str
    customer_gstin: str | None
    lines: list[DraftLine] = field(default_factory=list)
    subtotal_minor: int = 0
    discount_minor: int = 0
    taxable_minor: int = 0
    cgst_minor: int = 0
    sgst_minor: int = 0
    igst_minor: int = 0
    tax_minor: int = 0
    total_minor: int = 0
    credit_applied_minor: int = 0
    amount_due_minor: int = 0

    def clone(self) -> DraftInvoice:
        """A shallow copy (lines shared); much cheaper than copy.copy in the billing loop."""
        other = object.__new__(DraftInvoice)
        other.__dict__ = dict(self.__dict__)
        return other

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key, value in list(out.items()):
            if isinstance(value, datetime):
                out[key] = value.isoformat()
        for line in out["lines"]:
            for key in ("period_start", "period_end"):
                if line[key] is not None:
                    line[key] = line[key].isoformat()
        return out


def _half_up_bp(amount: int, bp: int) -> int:
    return (amount * bp * 2 + 10000) // 20000 if amount >= 0 else -_half_up_bp(-amount, bp)


def coupon_discount(coupon: CouponInfo | None, subtotal_minor: int, currency: str) -> int:
    """Discount for one invoice: percent rounded half-up, or a fixed amount capped at subtotal."""
    if coupon is None or subtotal_minor <= 0:
        return 0
    if coupon.percent_off_bp is not None:
        return min(subtotal_minor, _half_up_bp(subtotal_minor, coupon.percent_off_bp))
    if coupon.currency != currency:
        return 0
    return min(subtotal_minor, coupon.amount_off_minor or 0)


def allocate_discount(amounts: Sequence[int], discount_minor: int) -> list[int]:
    """An invoice-level discount split over lines by largest remainder of their (positive)
    amounts, so the line discounts sum to it exactly."""
    positive = [max(a, 0) for a in amounts]
    if discount_minor and sum(positive) > 0:
        return allocate_minor(discount_minor, positive)
    return [0] * len(amounts)


def coupon_applies(coupon: CouponInfo | None, periods_used: int) -> bool:
    """Whether a coupon still discounts the next recurring invoice."""
    if coupon is None:
        return False
    if coupon.duration == "forever":
        return True
    if coupon.duration == "once":
        return periods_used < 1
    return periods_used < (coupon.duration_in_periods or 0)


def build_invoice(
    *,
    kind: str,
    customer_id: int,
    subscription_id: int | None,
    currency: str,
    issued_at: datetime,
    lines: Sequence[LineInput],
    customer: CustomerTax,
    supplier_gstin: str,
    discount_minor: int = 0,
    credit_available_minor: int = 0,
    period_start: datetime | None = None,
    period_end: datetime | None = None,
) -> DraftInvoice:
    """Compute discount allocation, GST and totals. Rates follow the invoice date (IST)."""
    pos = pos_for(customer.state_code, customer.gstin, customer.tax_status)
    regime = regime_for(supplier_gstin[:2], pos, customer.tax_status)
    inv = DraftInvoice(
        kind,
        customer_id,
        subscription_id,
        currency,
        issued_at,
        period_start,
        period_end,
        pos,
        regime.value,
        supplier_gstin,
        customer.gstin,
    )
    discounts = [
        line.discount_minor + d
        for line, d in zip(
            lines, allocate_discount([x.amount_minor for x in lines], discount_minor), strict=True
        )
    ]
    on = ist_date(issued_at)
    taxable = [line.amount_minor - d for line, d in zip(lines, discounts, strict=True)]
    rates = [
        gst_rate_bp(line.sac, on) if line.tax_rate_bp is None else line.tax_rate_bp
        for line in lines
    ]
    taxes = compute_line_taxes(list(zip(taxable, rates, strict=True)), regime)
    for line, d, tx_amt, rate, tax in zip(lines, discounts, taxable, rates, taxes, strict=True):
        inv.lines.append(
            DraftLine(
                line.kind,
                line.description,
                line.plan_id,
                line.sac,
                line.quantity,
                line.amount_minor,
                d,
                tx_amt,
                rate,
                tax.cgst_minor,
                tax.sgst_minor,
                tax.igst_minor,
                line.period_start,
                line.period_end,
            )
        )
    inv.subtotal_minor = sum(x.amount_minor for x in inv.lines)
    inv.discount_minor = sum(x.discount_minor for x in inv.lines)
    inv.taxable_minor = sum(x.taxable_minor for x in inv.lines)
    inv.cgst_minor = sum(x.cgst_minor for x in inv.lines)
    inv.sgst_minor = sum(x.sgst_minor for x in inv.lines)
    inv.igst_minor = sum(x.igst_minor for x in inv.lines)
    inv.tax_minor = inv.cgst_minor + inv.sgst_minor + inv.igst_minor
    inv.total_minor = inv.taxable_minor + inv.tax_minor
    inv.credit_applied_minor = max(0, min(credit_available_minor, inv.total_minor))
    inv.amount_due_minor = inv.total_minor - inv.credit_applied_minor
    return inv
