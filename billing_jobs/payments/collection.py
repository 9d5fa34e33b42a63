"""Collecting open invoices and running due retries on the ledger: claim the invoice, charge the
default method, then finalize the attempt and settle the invoice (paid, or the retry scheduled
and dunning started) in one transaction. Re-running, or overlapping runs, never charge twice."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select, update

from billing_jobs.ledger import schema as s
from billing_jobs.ledger.schema import payments_collection_state
from billing_jobs.payments.attempt_store import LedgerAttemptStore
from billing_jobs.payments.charging import (
    AlreadyPaid,
    Attempt,
    AttemptStatus,
    CollectionError,
    InvoiceCharge,
    collect_invoice,
)
from billing_jobs.payments.gateway import Gateway, PaymentResult
from billing_jobs.payments.method_rules import PaymentMethodError, check_charge
from billing_jobs.payments.outcomes import finish_attempt, settle_success
from billing_jobs.payments.retries import ExponentialPolicy, RetryPolicy
from billing_jobs.payments.state import (
    CollectionReport,
    aware,
    default_method,
    gateway_customer_of,
    stored_method,
    upsert_state,
)


def _attempt_invoice(
    engine: Engine,
    gateway: Gateway,
    store: LedgerAttemptStore,
    inv: Any,
    now: datetime,
    policy: RetryPolicy,
    report: CollectionReport,
    retry_at: datetime | None = None,
) -> None:
    """One charge of `inv` on its default method, settled in the transaction that finalizes
    the attempt. `retry_at`: the scheduled retry this charge consumes (a retry skipped for want
    of a usable method is consumed too; a new default method schedules it again)."""
    due = inv.amount_due_minor - inv.amount_paid_minor
    with engine.connect() as conn:
        method = default_method(conn, inv.customer_id, store.gateway)
        gcus = gateway_customer_of(conn, inv.customer_id, store.gateway)
    skip = None
    if method is None:
        skip = "no default payment method"
    elif gcus is None:
        skip = f"customer {inv.customer_id} has no {store.gateway} customer"
    else:
        try:
            # Limits and currency are ours to enforce; expiry is the issuer's (networks update
            # expired cards), so an expired card is still sent and its decline starts dunning.
            check_charge(replace(stored_method(method), exp_month=None, exp_year=None), due,
                         inv.currency, now.date())  # fmt: skip
        except PaymentMethodError as e:
            skip = str(e)  # never sent to the gateway: it would be refused
    if skip is not None:
        report.skipped[inv.id] = skip
        if retry_at is not None:
            _consume_retry(engine, inv.id, retry_at, now)
        return
    charge = InvoiceCharge(
        str(inv.id), gcus, method.gateway_token, due, inv.currency,
        {"paysight_customer_id": str(inv.customer_id)},
    )  # fmt: skip

    def finish(a: Attempt, result: PaymentResult) -> Attempt:
        return finish_attempt(engine, store.gateway, a.attempt_id, result, now, report, policy,
                              token=method.gateway_token)  # fmt: skip

    try:
        attempt = collect_invoice(store, gateway, charge, now, finish)
    except AlreadyPaid:
        settle_success(engine, store.gateway, inv.id, now, report)
        return
    except CollectionError as e:  # in flight, claimed elsewhere, no retry due, not open
        report.skipped[inv.id] = str(e)
        return
    report.charged.append(inv.id)
    if attempt.status is AttemptStatus.UNKNOWN:
        report.pending.append(inv.id)  # the invoice stays claimed; the janitor resolves it


def _consume_retry(engine: Engine, inv_id: int, retry_at: datetime, now: datetime) -> None:
    cs = payments_collection_state
    with engine.begin() as conn:  # compare-and-set: a retry rescheduled meanwhile stays
        conn.execute(
            update(cs)
            .where(cs.c.invoice_id == inv_id, cs.c.next_retry_at == retry_at)
            .values(next_retry_at=None, updated_at=now)
        )


# -- collection, retries, janitor --------------------------------------------------------------
def collect_open_invoices(
    engine: Engine,
    gateway: Gateway,
    gateway_name: str,
    now: datetime,
    policy: RetryPolicy | None = None,
    *,
    invoice_ids: Sequence[int] | None = None,
) -> CollectionReport:
    """First charge of every open, issued invoice with money due and no attempt yet, on the
    customer's default method at `gateway_name` (only `invoice_ids` when given: the operator's
    `payments collect`, same rules). Re-running, or running several at once, never charges an
    invoice twice: each charge is claimed first (see `LedgerAttemptStore`)."""
    now = aware(now)
    policy = policy or ExponentialPolicy()
    store = LedgerAttemptStore(engine, gateway_name)
    inv, pa = s.invoices, s.payment_attempts
    q = (
        select(inv)
        .where(
            inv.c.status == "open",
            inv.c.issued_at <= now,
            inv.c.amount_due_minor > inv.c.amount_paid_minor,
            ~select(pa.c.id).where(pa.c.invoice_id == inv.c.id).exists(),
            ~select(payments_collection_state.c.invoice_id)
            .where(payments_collection_state.c.invoice_id == inv.c.id)
            .exists(),
        )
        .order_by(inv.c.id)
    )
    if invoice_ids is not None:
        q = q.where(inv.c.id.in_(list(invoice_ids)))
    with engine.connect() as conn:
        rows = conn.execute(q).all()
    report = CollectionReport()
    for r in rows:
        _attempt_invoice(engine, gateway, store, r, now, policy, report)
    return report


def run_due_retries(
    engine: Engine, gateway: Gateway, now: datetime, policy: RetryPolicy | None = None
) -> CollectionReport:
    """Retry every failed invoice whose scheduled retry time has come (on the current default
    method, so a replaced card is used). Each scheduled retry is charged at most once, however
    many of these run at the same time: the retry is consumed with the attempt's claim."""
    now = aware(now)
    policy = policy or ExponentialPolicy()
    store = LedgerAttemptStore(engine, gateway.name)
    inv, cs = s.invoices, payments_collection_state
    with engine.connect() as conn:
        rows = conn.execute(
            select(inv, cs.c.next_retry_at.label("retry_at"))
            .select_from(inv.join(cs, cs.c.invoice_id == inv.c.id))
            .where(
                cs.c.gateway == gateway.name,
                cs.c.closed == 0,
                cs.c.next_retry_at.is_not(None),
                cs.c.next_retry_at <= now,
            )
            .order_by(cs.c.next_retry_at, inv.c.id)
        ).all()
    report = CollectionReport()
    for r in rows:
        if r.status != "open" or r.amount_due_minor <= r.amount_paid_minor:
            with engine.begin() as conn:
                upsert_state(conn, r.id, gateway.name, now, next_retry_at=None, closed=1)
            report.skipped[r.id] = f"invoice is {r.status}"
            continue
        _attempt_invoice(engine, gateway, store, r, now, policy, report, retry_at=r.retry_at)
    return report
