"""Collecting open invoices and running due retries on the ledger: charge the default method,
record the outcome, schedule the retry and start dunning. Re-running never charges twice."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from billing_jobs.errors import InvalidTransitionError
from billing_jobs.invoicing.invoices import mark_invoice_paid
from billing_jobs.ledger import schema as s
from billing_jobs.ledger.schema import payments_collection_state
from billing_jobs.payments.attempt_store import LedgerAttemptStore
from billing_jobs.payments.charging import (
    AlreadyPaid,
    Attempt,
    AttemptInFlight,
    AttemptStatus,
    InvoiceCharge,
    collect_invoice,
    retry_context,
)
from billing_jobs.payments.dunning import DunningInvoice, start_dunning
from billing_jobs.payments.gateway import Gateway
from billing_jobs.payments.method_rules import (
    MANDATES,
    PaymentMethodError,
    check_charge,
    parse_kind,
)
from billing_jobs.payments.retries import ExponentialPolicy, RetryPolicy
from billing_jobs.payments.state import (
    CollectionReport,
    aware,
    default_method,
    dump_dunning,
    gateway_customer_of,
    ledger_customer,
    move_subscription,
    open_dunning_on_subscription,
    retry_features,
    state_row,
    stored_method,
    subscription_status,
    upsert_state,
)


def _record_paid(engine: Engine, inv_id: int, gateway: str, at: datetime, now: datetime) -> bool:
    """Mark the invoice paid exactly once and end its collection; True when it changed."""
    changed = False
    try:
        mark_invoice_paid(engine, inv_id, at=at)
        changed = True
    except InvalidTransitionError:
        pass  # already paid (a re-run, or a late success recorded by someone else)
    with engine.begin() as conn:
        # Dunning keeps its state: the next dunning run records the "recovered" notification.
        upsert_state(conn, inv_id, gateway, now, next_retry_at=None, closed=1)
        sub_id = conn.execute(
            select(s.invoices.c.subscription_id).where(s.invoices.c.id == inv_id)
        ).scalar_one()
        others = sub_id is not None and open_dunning_on_subscription(conn, sub_id)
    if sub_id is not None and not others:
        with engine.connect() as conn:
            status = subscription_status(conn, sub_id)
        if status in ("past_due", "unpaid"):  # unpaid: restricted by dunning, now paid
            move_subscription(engine, sub_id, "active", now, "payment_recovered")
    return changed


def apply_outcome(
    engine: Engine,
    store: LedgerAttemptStore,
    charge: InvoiceCharge,
    sub_id: int | None,
    attempt: Attempt,
    now: datetime,
    policy: RetryPolicy,
    mandate: bool,
    report: CollectionReport,
    features: dict[str, Any] | None = None,
) -> None:
    inv_id = int(charge.invoice_id)
    if attempt.status is AttemptStatus.SUCCEEDED:
        if _record_paid(engine, inv_id, store.gateway, attempt.updated_at, now):
            report.paid.append(inv_id)
            report.collected_minor[charge.currency] = (
                report.collected_minor.get(charge.currency, 0) + attempt.amount_minor
            )
        return
    if attempt.status is not AttemptStatus.FAILED:
        report.pending.append(inv_id)  # processing (UPI) or unknown: the janitor resolves it
        with engine.begin() as conn:
            upsert_state(conn, inv_id, store.gateway, now, next_retry_at=None)
        return
    report.failed.append(inv_id)
    ctx = retry_context(
        charge, store.attempts(charge.invoice_id), store.gateway, mandate=mandate,
        features=features,
    )  # fmt: skip
    decision = policy.next_attempt(ctx) if ctx else None
    next_at = decision.at if decision is not None and decision.retry else None
    if next_at is not None:
        report.retries_scheduled[inv_id] = next_at.isoformat()
    with engine.begin() as conn:
        row = state_row(conn, inv_id)
        dunning = row.dunning_json if row is not None else None
        if not dunning:
            dunning = dump_dunning(
                start_dunning(
                    DunningInvoice(charge.invoice_id, str(ledger_customer(conn, inv_id)),
                                   charge.amount_minor, charge.currency),
                    attempt.updated_at,
                )
            )  # fmt: skip
        upsert_state(conn, inv_id, store.gateway, now, next_retry_at=next_at,
                      dunning_json=dunning)  # fmt: skip
    with engine.connect() as conn:
        status = None if sub_id is None else subscription_status(conn, sub_id)
    if status in ("active", "trialing"):
        move_subscription(engine, sub_id, "past_due", now, "payment_failed")


def _attempt_invoice(
    engine: Engine,
    gateway: Gateway,
    store: LedgerAttemptStore,
    inv: Any,
    now: datetime,
    policy: RetryPolicy,
    report: CollectionReport,
) -> None:
    due = inv.amount_due_minor - inv.amount_paid_minor
    with engine.connect() as conn:
        method = default_method(conn, inv.customer_id, store.gateway)
        gcus = gateway_customer_of(conn, inv.customer_id, store.gateway)
    if method is None:
        report.skipped[inv.id] = "no default payment method"
        return
    if gcus is None:
        report.skipped[inv.id] = f"customer {inv.customer_id} has no {store.gateway} customer"
        return
    try:
        # Limits and currency are ours to enforce; expiry is the issuer's (networks update
        # expired cards), so an expired card is still sent and its decline starts dunning.
        check_charge(replace(stored_method(method), exp_month=None, exp_year=None), due, inv.currency,
                     now.date())  # fmt: skip
    except PaymentMethodError as e:
        report.skipped[inv.id] = str(e)  # never sent to the gateway: it would be refused
        return
    charge = InvoiceCharge(
        str(inv.id), gcus, method.gateway_token, due, inv.currency,
        {"paysight_customer_id": str(inv.customer_id)},
    )  # fmt: skip
    try:
        attempt = collect_invoice(store, gateway, charge, now)
    except AlreadyPaid:
        if _record_paid(engine, inv.id, store.gateway, now, now):
            report.paid.append(inv.id)
        return
    except AttemptInFlight:
        report.skipped[inv.id] = "an attempt is unresolved; the janitor will settle it"
        return
    report.charged.append(inv.id)
    mandate = parse_kind(method.kind) in MANDATES
    apply_outcome(
        engine, store, charge, inv.subscription_id, attempt, now, policy, mandate, report,
        retry_features(method),
    )  # fmt: skip


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
    `payments collect`, same rules). Re-running never charges an invoice twice."""
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
    method, so a replaced card is used)."""
    now = aware(now)
    policy = policy or ExponentialPolicy()
    store = LedgerAttemptStore(engine, gateway.name)
    inv, cs = s.invoices, payments_collection_state
    with engine.connect() as conn:
        rows = conn.execute(
            select(inv)
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
        with engine.begin() as conn:  # the retry is consumed whatever happens next
            upsert_state(conn, r.id, gateway.name, now, next_retry_at=None)
        _attempt_invoice(engine, gateway, store, r, now, policy, report)
    return report
