"""The dunning run on the ledger: advance every open dunning process, record and mail each
notification once, and restrict, cancel or mark unpaid as the configured machine says."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select

from billing_jobs.errors import InvalidTransitionError
from billing_jobs.invoicing.invoices import mark_uncollectible
from billing_jobs.ledger import schema as s
from billing_jobs.ledger.schema import payments_collection_state, payments_dunning_notifications
from billing_jobs.money import Money
from billing_jobs.payments.dunning import (
    CLOSED,
    DunningConfig,
    DunningInvoice,
    DunningStatus,
    dunning_actions,
    load_config,
)
from billing_jobs.payments.state import (
    aware,
    dump_dunning,
    load_dunning,
    move_subscription,
    upsert_state,
)
from billing_jobs.subscriptions.service import cancel_subscription


# -- dunning -----------------------------------------------------------------------------------
def run_dunning(
    engine: Engine,
    now: datetime,
    config: DunningConfig | None = None,
    *,
    supplier_name: str = "Paysight",
    pay_url: str = "https://pay.paysight.local",
) -> dict[str, Any]:
    """Advance every open dunning process to `now`: record each due notification once, queue
    a mail when the customer has an e-mail, and apply restrict / cancel / mark-unpaid."""
    from billing_jobs.invoicing.mail import queue_message

    now = aware(now)
    config = config or load_config()
    cs, inv, cus = payments_collection_state, s.invoices, s.customers
    with engine.connect() as conn:
        rows = conn.execute(
            select(cs, inv.c.status.label("inv_status"), inv.c.subscription_id, inv.c.number,
                   inv.c.amount_due_minor, inv.c.amount_paid_minor, inv.c.currency,
                   inv.c.customer_id, cus.c.email, cus.c.name, cus.c.locale)
            .select_from(cs.join(inv, inv.c.id == cs.c.invoice_id)
                         .join(cus, cus.c.id == inv.c.customer_id))
            .where(cs.c.dunning_json.is_not(None)).order_by(cs.c.invoice_id)
        ).all()  # fmt: skip
    out: dict[str, Any] = {"notifications": 0, "mails_queued": 0, "restricted": [],
                           "canceled": [], "unpaid": [], "recovered": []}  # fmt: skip
    for r in rows:
        state = load_dunning(r.dunning_json)
        if state.status in CLOSED:
            continue
        if r.inv_status in ("void", "uncollectible"):
            # Settled another way (voided, written off): stop dunning without telling anyone.
            with engine.begin() as conn:
                upsert_state(conn, r.invoice_id, r.gateway, now, next_retry_at=None, closed=1,
                              dunning_json=dump_dunning(replace(state, status=DunningStatus.CANCELED)))  # fmt: skip
            continue
        due = r.amount_due_minor - r.amount_paid_minor
        dinv = DunningInvoice(str(r.invoice_id), str(r.customer_id), due, r.currency,
                              paid=r.inv_status == "paid")  # fmt: skip
        retry_times = [r.next_retry_at] if r.next_retry_at else []
        res = dunning_actions(state, dinv, now, config, retry_times=retry_times)
        days = max(0, (now - state.started_at).days)
        deliveries: dict[int, int | None] = {}
        for i, note in enumerate(res.notifications):
            deliveries[i] = None
            if r.email and note.kind != "recovered":
                # Queued outside the ledger transaction (SQLite has one writer); the dedupe key
                # makes a re-run after a crash return the same mail instead of a second one.
                deliveries[i] = queue_message(
                    engine, kind="dunning", to=r.email, subject_key="dunning_reminder",
                    context={"customer_name": r.name,
                             "document_number": r.number or str(r.invoice_id),
                             "amount": Money(due, r.currency).format(r.locale or "en_IN"),
                             "days_overdue": days, "pay_url": pay_url,
                             "supplier_name": supplier_name},
                    now=now,
                    dedupe_key=f"dunning:{r.invoice_id}:{note.kind}:{note.due_at.isoformat()}",
                )  # fmt: skip
        with engine.begin() as conn:
            _record_notifications(conn, r, res.notifications, deliveries, now, out)
            closed = 1 if res.state.status in CLOSED else 0
            values: dict[str, Any] = {"dunning_json": dump_dunning(res.state), "closed": closed}
            if closed:
                values["next_retry_at"] = None
            upsert_state(conn, r.invoice_id, r.gateway, now, **values)
        _apply_dunning_status(engine, r, state.status, res.state.status, now, out)
    return out


def _record_notifications(
    conn: Any, r: Any, notes: Any, deliveries: dict[int, int | None], now: datetime, out: dict
) -> None:
    """Record each notification once (a re-run finds it and skips it)."""
    t = payments_dunning_notifications
    for i, note in enumerate(notes):
        exists = conn.execute(
            select(t.c.id).where(
                t.c.invoice_id == r.invoice_id, t.c.kind == note.kind, t.c.due_at == note.due_at
            )
        ).first()
        if exists:
            continue
        conn.execute(
            insert(t),
            {"invoice_id": r.invoice_id, "customer_id": r.customer_id, "kind": note.kind,
             "template_key": note.template_key, "due_at": note.due_at,
             "next_retry_at": note.next_retry_at, "amount_minor": note.amount_minor,
             "currency": note.currency, "mail_delivery_id": deliveries[i], "created_at": now},
        )  # fmt: skip
        out["notifications"] += 1
        out["mails_queued"] += deliveries[i] is not None


def _apply_dunning_status(
    engine: Engine, r: Any, before: DunningStatus, after: DunningStatus, now: datetime, out: dict
) -> None:
    if after is before:
        return
    sub_id = r.subscription_id
    if after is DunningStatus.RESTRICTED:
        # Access is cut by the subscription leaving past_due for unpaid; a payment restores it.
        move_subscription(engine, sub_id, "unpaid", now, "dunning_restricted")
        out["restricted"].append(r.invoice_id)
    elif after is DunningStatus.UNPAID:
        move_subscription(engine, sub_id, "unpaid", now, "dunning_unpaid")
        out["unpaid"].append(r.invoice_id)
    elif after is DunningStatus.CANCELED:
        if sub_id is not None:
            with suppress(InvalidTransitionError):  # already canceled
                cancel_subscription(engine, sub_id, at=now, credit_unused=False)
        with suppress(InvalidTransitionError):  # already written off
            mark_uncollectible(engine, r.invoice_id, at=now)
        out["canceled"].append(r.invoice_id)
    elif after is DunningStatus.RECOVERED:
        out["recovered"].append(r.invoice_id)
