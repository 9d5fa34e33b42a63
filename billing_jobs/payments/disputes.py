"""Disputes from gateway events (Stripe's `charge.dispute.*`): one row per dispute, moved forward
by its newest event only (older events never win), funds withdrawn while open or lost."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update

from billing_jobs.ledger.schema import payments_disputes
from billing_jobs.payments.charging import Attempt, AttemptStatus
from billing_jobs.payments.event_parsing import (
    DISPUTE_CLOSED,
    DISPUTE_STATUSES,
    DISPUTE_TYPES,
    EventStatus,
    IncomingEvent,
    MalformedEvent,
    minor_field,
    payment_id_of,
    text_field,
)


def apply_dispute(
    engine: Engine,
    ev: IncomingEvent,
    obj: Mapping[str, Any],
    at: datetime,
    now: datetime,
    find_attempt: Callable[[str], Attempt | None],
) -> tuple[EventStatus, str]:
    """Apply one dispute event (the object `obj`, as of `at`); returns the event's status and
    the detail for its record. `find_attempt(payment id)` is the ledger's attempt lookup."""
    did = str(text_field(obj, "id"))
    pid = payment_id_of(obj)
    status = obj.get("status") or DISPUTE_TYPES[ev.event_type]
    if status not in DISPUTE_STATUSES:
        raise MalformedEvent(f"dispute status {status!r} is not one of {sorted(DISPUTE_STATUSES)}")
    attempt = find_attempt(pid)
    if attempt is None or attempt.status is not AttemptStatus.SUCCEEDED:
        return EventStatus.UNMATCHED, f"no captured payment {pid} for dispute {did}"
    amount = minor_field(obj, "amount", required=False)
    amount = attempt.amount_minor if amount is None else amount
    reason = obj.get("reason") if isinstance(obj.get("reason"), str) else None
    closed = status in DISPUTE_CLOSED
    # Inquiries (warning_*) move no money; a won dispute gives it back.
    withdrawn = 0 if status == "won" or str(status).startswith("warning_") else amount
    d = payments_disputes
    with engine.begin() as conn:
        row = conn.execute(
            select(d).where(d.c.gateway == ev.source, d.c.gateway_dispute_id == did)
        ).first()
        values = {"status": status, "funds_withdrawn_minor": withdrawn, "last_event_at": at,
                  "updated_at": now, "closed_at": at if closed else None}  # fmt: skip
        if row is None:
            conn.execute(
                insert(d),
                {"gateway": ev.source, "gateway_dispute_id": did, "gateway_payment_id": pid,
                 "invoice_id": int(attempt.invoice_id), "amount_minor": amount,
                 "currency": attempt.currency, "reason": reason, "opened_at": at, **values},
            )  # fmt: skip
            return EventStatus.APPLIED, f"dispute {did} recorded as {status}"
        if row.status in DISPUTE_CLOSED and not closed:
            if at < row.opened_at:  # the opening arrived after the close: keep its date
                conn.execute(
                    update(d)
                    .where(d.c.gateway == ev.source, d.c.gateway_dispute_id == did)
                    .values(opened_at=at)
                )
            return EventStatus.IGNORED, f"dispute {did} is already {row.status}; {status} is older"
        if at < row.last_event_at or row.status == status:
            return EventStatus.IGNORED, f"dispute {did} already {row.status}"
        if row.opened_at > at:
            values["opened_at"] = at
        if reason and not row.reason:
            values["reason"] = reason
        conn.execute(
            update(d)
            .where(d.c.gateway == ev.source, d.c.gateway_dispute_id == did)
            .values(**values)
        )
    return EventStatus.APPLIED, f"dispute {did}: {row.status} -> {status}"
