"""The janitor: resolve every unresolved attempt from the gateway's truth and settle its invoice
in the same transaction, then repair what a crash of an older version (or a bulk writer) could
leave half-done: a success whose invoice is still open, a decline with no retry or dunning state,
a claim whose attempt is final. Never charges."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, and_, func, select, update

from billing_jobs.ledger import schema as s
from billing_jobs.payments.attempt_store import LedgerAttemptStore
from billing_jobs.payments.charging import gateway_truth
from billing_jobs.payments.gateway import Gateway
from billing_jobs.payments.outcomes import (
    finish_attempt,
    settle_declined_orphan,
    settle_success,
)
from billing_jobs.payments.retries import ExponentialPolicy, RetryPolicy
from billing_jobs.payments.state import CollectionReport, aware

STALE_AFTER = timedelta(minutes=15)  # a pending attempt older than this lost its process


def resolve_unknown(
    engine: Engine,
    gateway: Gateway,
    now: datetime,
    policy: RetryPolicy | None = None,
    stale_after: timedelta = STALE_AFTER,
) -> CollectionReport:
    """The janitor: ask the gateway about unresolved attempts (timeouts, pending UPI, attempts
    whose process died) and settle what it says; then `repair_orphans`. Never charges."""
    now = aware(now)
    policy = policy or ExponentialPolicy()
    store = LedgerAttemptStore(engine, gateway.name)
    report = CollectionReport()
    for attempt in store.list_unknown(stale_before=now - stale_after):
        result = gateway_truth(gateway, attempt, now, stale_after)
        if result is not None:
            finish_attempt(engine, gateway.name, attempt.attempt_id, result, now, report, policy)
    repair_orphans(engine, gateway.name, now, policy, report)
    return report


def repair_orphans(
    engine: Engine,
    gateway: str,
    now: datetime,
    policy: RetryPolicy | None = None,
    report: CollectionReport | None = None,
) -> CollectionReport:
    """Invoices left inconsistent by an interrupted writer: paid where an attempt succeeded,
    retry and dunning scheduled where the last attempt failed without them, stale claims
    cleared. Idempotent; touches only what is inconsistent."""
    policy = policy or ExponentialPolicy()
    report = report if report is not None else CollectionReport()
    inv, pa, cs = s.invoices, s.payment_attempts, s.payments_collection_state
    last_no = (
        select(pa.c.invoice_id, func.max(pa.c.attempt_number).label("n"))
        .where(pa.c.gateway == gateway)
        .group_by(pa.c.invoice_id)
        .subquery()
    )
    with engine.connect() as conn:
        paid_open = (
            conn.execute(
                select(inv.c.id)
                .join(pa, pa.c.invoice_id == inv.c.id)
                .where(
                    pa.c.gateway == gateway,
                    pa.c.status == "succeeded",
                    inv.c.status.in_(("open", "uncollectible")),
                )
                .order_by(inv.c.id)
            )
            .scalars()
            .all()
        )
        declined = (
            conn.execute(
                select(inv.c.id)
                .join(last_no, last_no.c.invoice_id == inv.c.id)
                .join(pa, and_(pa.c.invoice_id == inv.c.id, pa.c.attempt_number == last_no.c.n))
                .outerjoin(cs, cs.c.invoice_id == inv.c.id)
                .where(
                    inv.c.status == "open",
                    pa.c.status == "failed",
                    (cs.c.invoice_id.is_(None))
                    | (cs.c.dunning_json.is_(None) & (cs.c.closed == 0)),
                )
                .order_by(inv.c.id)
            )
            .scalars()
            .all()
        )
    for inv_id in paid_open:
        settle_success(engine, gateway, inv_id, now, report)
    for inv_id in declined:
        settle_declined_orphan(engine, gateway, inv_id, now, policy, report)
    unresolved = select(pa.c.id).where(pa.c.status.in_(("pending", "unknown")))
    with engine.begin() as conn:
        conn.execute(
            update(cs)
            .where(cs.c.claim_attempt_id.is_not(None), cs.c.claim_attempt_id.not_in(unresolved))
            .values(claim_attempt_id=None, claimed_at=None)
        )
    return report
