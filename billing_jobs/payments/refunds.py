"""Refunds on the ledger: refund a captured payment at the gateway with its credit note, and
record payments_refunds the gateway reports."""

from __future__ import annotations

from datetime import datetime
from fractions import Fraction
from typing import Any

from sqlalchemy import Engine, func, insert, select

from billing_jobs.errors import NotFoundError
from billing_jobs.inputs import ledger_ref
from billing_jobs.invoicing.credit_notes import create_credit_note
from billing_jobs.ledger import schema as s
from billing_jobs.ledger.schema import payments_refunds
from billing_jobs.money import round_fraction
from billing_jobs.payments.gateway import Gateway
from billing_jobs.payments.method_rules import check_refund
from billing_jobs.payments.state import PaymentsError, aware


# -- payments_refunds -----------------------------------------------------------------------------------
def create_refund(
    engine: Engine,
    gateway: Gateway,
    invoice_or_payment: int | str,
    amount_minor: int,
    now: datetime,
    *,
    memo: str | None = None,
) -> dict[str, Any]:
    """Refund part or all of an invoice's captured payment (by invoice id or gateway payment id)
    and issue the matching credit note. Refuses more than is left; changes nothing then."""
    now = aware(now)
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise PaymentsError(f"amount_minor must be an integer, got {amount_minor!r}")
    pa = s.payment_attempts
    key = ledger_ref(invoice_or_payment)
    cond = (
        pa.c.invoice_id == key
        if key is not None
        else pa.c.gateway_payment_id == str(invoice_or_payment)
    )
    with engine.connect() as conn:
        attempt = conn.execute(select(pa).where(cond, pa.c.status == "succeeded")).first()
        if attempt is None:
            raise NotFoundError(f"no captured payment for {invoice_or_payment!r}")
        if attempt.gateway != gateway.name:
            raise PaymentsError(f"payment was captured by {attempt.gateway}, not {gateway.name}")
        refunded = conn.execute(
            select(func.coalesce(func.sum(payments_refunds.c.amount_minor), 0)).where(
                payments_refunds.c.gateway_payment_id == attempt.gateway_payment_id
            )
        ).scalar_one()
        n_prior = conn.execute(
            select(func.count()).where(
                payments_refunds.c.gateway_payment_id == attempt.gateway_payment_id
            )
        ).scalar_one()
        inv = conn.execute(select(s.invoices).where(s.invoices.c.id == attempt.invoice_id)).one()
    check_refund(attempt.amount_minor, int(refunded), amount_minor)  # raises; nothing changed
    key = f"paysight-refund-{attempt.gateway_payment_id}-{n_prior + 1}"
    with engine.begin() as conn:
        # The credit note and our record commit only if the gateway refunded: a gateway error
        # rolls both back, and the deterministic key makes a re-run return the same refund.
        note = _refund_credit_note(conn, inv, amount_minor, int(refunded), now, memo)
        refund = gateway.refund(attempt.gateway_payment_id, amount_minor, idempotency_key=key)
        conn.execute(
            insert(payments_refunds),
            {"invoice_id": inv.id, "gateway": gateway.name,
             "gateway_payment_id": attempt.gateway_payment_id,
             "gateway_refund_id": refund.gateway_refund_id, "amount_minor": amount_minor,
             "currency": attempt.currency, "credit_note_id": note["id"], "created_at": now},
        )  # fmt: skip
    return {
        "invoice_id": inv.id, "gateway_payment_id": attempt.gateway_payment_id,
        "gateway_refund_id": refund.gateway_refund_id, "amount_minor": amount_minor,
        "currency": attempt.currency, "status": refund.status,
        "credit_note": {"id": note["id"], "number": note["number"],
                        "total_minor": note["total_minor"]},
        "refundable_left_minor": attempt.amount_minor - int(refunded) - amount_minor,
    }  # fmt: skip


def _refund_credit_note(
    conn: Any, inv: Any, amount_minor: int, refunded_before: int, now: datetime, memo: str | None
) -> dict[str, Any]:
    # Credit notes take taxable value; the refund is gross (tax included), so scale it back.
    # Scaling the running total (not each refund) keeps partial payments_refunds summing to the invoice.
    def taxable_of(gross: int) -> int:
        if not inv.total_minor:
            return gross
        return round_fraction(Fraction(gross * inv.taxable_minor, inv.total_minor))

    taxable: int | None = taxable_of(refunded_before + amount_minor) - taxable_of(refunded_before)
    current = conn.execute(select(s.invoices).where(s.invoices.c.id == inv.id)).one()
    if refunded_before + amount_minor >= current.total_minor:
        taxable = None  # the last refund credits whatever is left, so rounding cannot strand 1
    else:
        taxable = max(taxable or 0, 1)
    return create_credit_note(conn, inv.id, at=now, amount_minor=taxable,
                              reason="refund", destination="refund", memo=memo)  # fmt: skip


def record_gateway_refund(
    engine: Engine,
    gateway_name: str,
    gateway_payment_id: str,
    gateway_refund_id: str,
    amount_minor: int,
    currency: str,
    now: datetime,
    *,
    memo: str | None = None,
) -> dict[str, Any]:
    """Record a refund the gateway reports (made here or in its dashboard) with its credit note.

    Returns ``{"status": "recorded" | "duplicate", ...}``. Raises `NotFoundError` when the
    payment is not captured in the ledger (yet), `PaymentsError` on a currency mismatch and
    `RefundExceedsCaptured` when the total refunded would exceed the capture; nothing changes
    then."""
    now = aware(now)
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise PaymentsError(f"amount_minor must be an integer, got {amount_minor!r}")
    pa = s.payment_attempts
    with engine.begin() as conn:
        if conn.execute(
            select(payments_refunds.c.id).where(
                payments_refunds.c.gateway_refund_id == gateway_refund_id
            )
        ).first():
            return {"status": "duplicate", "gateway_refund_id": gateway_refund_id}
        attempt = conn.execute(
            select(pa).where(pa.c.gateway == gateway_name,
                             pa.c.gateway_payment_id == gateway_payment_id,
                             pa.c.status == "succeeded")
        ).first()  # fmt: skip
        if attempt is None:
            raise NotFoundError(f"no captured {gateway_name} payment {gateway_payment_id!r}")
        if currency.upper() != attempt.currency:
            raise PaymentsError(
                f"refund {gateway_refund_id} is in {currency}, payment {gateway_payment_id} "
                f"in {attempt.currency}"
            )
        refunded = conn.execute(
            select(func.coalesce(func.sum(payments_refunds.c.amount_minor), 0)).where(
                payments_refunds.c.gateway_payment_id == gateway_payment_id
            )
        ).scalar_one()
        left = check_refund(attempt.amount_minor, int(refunded), amount_minor)
        inv = conn.execute(select(s.invoices).where(s.invoices.c.id == attempt.invoice_id)).one()
        note = _refund_credit_note(conn, inv, amount_minor, int(refunded), now, memo)
        conn.execute(
            insert(payments_refunds),
            {"invoice_id": inv.id, "gateway": gateway_name,
             "gateway_payment_id": gateway_payment_id, "gateway_refund_id": gateway_refund_id,
             "amount_minor": amount_minor, "currency": attempt.currency,
             "credit_note_id": note["id"], "created_at": now},
        )  # fmt: skip
    return {"status": "recorded", "invoice_id": inv.id, "gateway_refund_id": gateway_refund_id,
            "amount_minor": amount_minor, "credit_note_id": note["id"],
            "refundable_left_minor": left}  # fmt: skip
