"""A customer's erasure request: personal data in the ledger pseudonymized or removed, what tax
law needs kept, and an append-only record of when and which fields (never the old values).

Kept: the customer's id, GSTIN, state code, country, tax status, currency and locale (GST
returns are filed by GSTIN and place of supply), every invoice and credit note row (they hold
no name or address: customer GSTIN, place of supply and amounts) and the rendered invoice and
credit-note PDFs in the document store, which are the tax invoices themselves (CGST Rules 46
and 56: recipient name, address and GSTIN as issued) and expire with their retention class.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update

from billing_jobs.errors import NotFoundError, ValidationError
from billing_jobs.ledger import schema as s
from billing_jobs.ledger.session import Target, write_conn
from billing_jobs.periods import require_aware

# Subscriptions in these states still bill or may bill again: cancel them first.
LIVE_STATUSES = ("trialing", "active", "past_due", "paused", "unpaid", "incomplete")
ERASED_FIELDS = (
    "customers.name",  # replaced by "Erased customer <id>" (the column is required)
    "customers.email",
    "customers.address_line",
    "customers.city",
    "customers.postal_code",
    "customers.external_ref",
    "payment_methods.label",  # a UPI method's label carries the VPA
    "payment_methods.mandate_ref",
    "payment_methods.gateway_token",  # the saved method can no longer be charged
    "payments_method_details.last4",
    "payments_method_details.exp_month",
    "payments_method_details.exp_year",
    "document_deliveries.recipient",
    "document_deliveries.subject",
    "document_deliveries.text_body",
    "document_deliveries.html_body",
    "document_delivery_attachments.content",
    "payments_gateway_events.body",
    "payments_quarantined_events.body",
)


class ErasureRefusedError(ValidationError):
    """The customer cannot be erased yet: a subscription still bills or may bill again."""


def pseudonym(customer_id: int) -> str:
    return f"Erased customer {customer_id}"


def erased_recipient(customer_id: int) -> str:
    return f"erased-customer-{customer_id}@invalid"  # RFC 2606: never delivered


def _refuse_if_live(conn: Any, customer_id: int) -> None:
    sub = s.subscriptions
    live = conn.execute(
        select(sub.c.id).where(sub.c.customer_id == customer_id, sub.c.status.in_(LIVE_STATUSES))
    ).scalars().all()  # fmt: skip
    if live:
        raise ErasureRefusedError(
            f"customer {customer_id} still has live subscription(s) {', '.join(map(str, live))}; "
            "cancel them before erasing the customer"
        )


def _record(row: Any, already: bool, gateway_ids: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "customer_id": row.customer_id,
        "erased_at": row.erased_at.isoformat(),
        "fields": row.fields.split(","),
        "already_erased": already,
        "gateway_customers": gateway_ids,
    }


def erasure_record(target: Target, customer_id: int) -> dict[str, Any] | None:
    """The customer's erasure record, or None when the customer was never erased."""
    with write_conn(target) as conn:
        row = conn.execute(
            select(s.customer_erasures).where(s.customer_erasures.c.customer_id == customer_id)
        ).first()
        return _record(row, True, _gateway_ids(conn, customer_id)) if row else None


def _gateway_ids(conn: Any, customer_id: int) -> list[dict[str, str]]:
    gc = s.payments_gateway_customers
    rows = conn.execute(
        select(gc.c.gateway, gc.c.gateway_customer_id).where(gc.c.customer_id == customer_id)
    )
    return [{"gateway": g, "gateway_customer_id": i} for g, i in rows]


def _scrub_payment_methods(conn: Any, customer_id: int, now: datetime) -> None:
    pm = s.payment_methods
    ids = conn.execute(select(pm.c.id).where(pm.c.customer_id == customer_id)).scalars().all()
    for pm_id in ids:
        conn.execute(
            update(pm)
            .where(pm.c.id == pm_id)
            .values(
                label=None, mandate_ref=None, is_default=False, gateway_token=f"erased:{pm_id}",
                removed_at=func.coalesce(pm.c.removed_at, now),
            )
        )  # fmt: skip
    if ids:
        md = s.payments_method_details
        conn.execute(
            update(md)
            .where(md.c.payment_method_id.in_(ids))
            .values(last4=None, exp_month=None, exp_year=None)
        )


def _scrub_mail(conn: Any, customer_id: int, email: str | None) -> None:
    if not email:
        return
    dd = s.document_deliveries
    ids = conn.execute(
        select(dd.c.id).where(func.lower(dd.c.recipient) == email.lower())
    ).scalars().all()  # fmt: skip
    if not ids:
        return
    conn.execute(
        update(dd).where(dd.c.id.in_(ids)).values(
            recipient=erased_recipient(customer_id), subject="", text_body="", html_body=""
        )
    )  # fmt: skip
    conn.execute(
        update(dd)
        .where(dd.c.id.in_(ids), dd.c.status.in_(("queued", "sending")))
        .values(status="failed", last_error="customer erased", next_attempt_at=None)
    )
    att = s.document_delivery_attachments
    conn.execute(delete(att).where(att.c.delivery_id.in_(ids)))


def _scrub_event_bodies(conn: Any, customer_id: int) -> None:
    pa, inv = s.payment_attempts, s.invoices
    payments = (
        select(pa.c.gateway_payment_id)
        .join(inv, inv.c.id == pa.c.invoice_id)
        .where(inv.c.customer_id == customer_id, pa.c.gateway_payment_id.is_not(None))
    )
    for table in (s.payments_gateway_events, s.payments_quarantined_events):
        conn.execute(
            update(table).where(table.c.gateway_payment_id.in_(payments)).values(body=None)
        )


def erase_customer(target: Target, customer_id: int, *, now: datetime) -> dict[str, Any]:
    """Pseudonymize the customer's personal data in the ledger and record it; idempotent (a
    second call changes nothing and returns the first record with `already_erased`)."""
    now = require_aware(now, "now")
    with write_conn(target) as conn:
        cust = conn.execute(select(s.customers).where(s.customers.c.id == customer_id)).first()
        if cust is None:
            raise NotFoundError(f"customer {customer_id} does not exist")
        er = s.customer_erasures
        done = conn.execute(select(er).where(er.c.customer_id == customer_id)).first()
        if done is not None:
            return _record(done, True, _gateway_ids(conn, customer_id))
        _refuse_if_live(conn, customer_id)
        conn.execute(
            update(s.customers)
            .where(s.customers.c.id == customer_id)
            .values(
                name=pseudonym(customer_id), email=None, address_line="", city="",
                postal_code="", external_ref=None,
            )
        )  # fmt: skip
        _scrub_payment_methods(conn, customer_id, now)
        _scrub_mail(conn, customer_id, cust.email)
        _scrub_event_bodies(conn, customer_id)
        conn.execute(
            insert(er).values(
                customer_id=customer_id, erased_at=now, fields=",".join(ERASED_FIELDS)
            )
        )
        row = conn.execute(select(er).where(er.c.customer_id == customer_id)).one()
        return _record(row, False, _gateway_ids(conn, customer_id))


def erased_customer_ids(target: Target) -> list[int]:
    """Ids of every erased customer (for scrubbing copies outside the ledger)."""
    with write_conn(target) as conn:
        return conn.execute(
            select(s.customer_erasures.c.customer_id).order_by(s.customer_erasures.c.customer_id)
        ).scalars().all()  # fmt: skip


def erasure_scope(target: Target) -> list[dict[str, Any]]:
    """Per erased customer, what identifies their data in copies outside the ledger: the
    customer id, their gateway customer and payment ids, and the ids of the mails that were
    addressed to them (now pseudonymized in the ledger)."""
    ids = erased_customer_ids(target)
    if not ids:
        return []
    gc, pa, inv, dd = (
        s.payments_gateway_customers, s.payment_attempts, s.invoices, s.document_deliveries
    )  # fmt: skip
    out: dict[int, dict[str, Any]] = {
        i: {"customer_id": i, "gateway_customer_ids": [], "gateway_payment_ids": [],
            "delivery_ids": []}
        for i in ids
    }  # fmt: skip
    with write_conn(target) as conn:
        for cid, gid in conn.execute(
            select(gc.c.customer_id, gc.c.gateway_customer_id).where(gc.c.customer_id.in_(ids))
        ):
            out[cid]["gateway_customer_ids"].append(gid)
        for cid, pid in conn.execute(
            select(inv.c.customer_id, pa.c.gateway_payment_id)
            .join(inv, inv.c.id == pa.c.invoice_id)
            .where(inv.c.customer_id.in_(ids), pa.c.gateway_payment_id.is_not(None))
        ):
            out[cid]["gateway_payment_ids"].append(pid)
        for cid in ids:
            out[cid]["delivery_ids"] = conn.execute(
                select(dd.c.id).where(dd.c.recipient == erased_recipient(cid))
            ).scalars().all()  # fmt: skip
    return list(out.values())
