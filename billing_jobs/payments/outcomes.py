"""An attempt's outcome settled on its invoice in the ledger transaction that finalizes it: paid
exactly once, or declined (the retry scheduled, dunning started, the subscription past due), or
still pending (the invoice stays claimed). Collection, the janitor and gateway webhooks all go
through `finish_attempt`, so a crash leaves either the old state or the new one, never half."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select

from billing_jobs.errors import InvalidTransitionError, ValidationError
from billing_jobs.invoicing.invoices import lock_invoice, mark_invoice_paid
from billing_jobs.ledger import schema as s
from billing_jobs.payments.attempt_store import LedgerAttemptStore
from billing_jobs.payments.charging import (
    UNRESOLVED,
    Attempt,
    AttemptStatus,
    InvoiceCharge,
    retry_context,
)
from billing_jobs.payments.declines import DeclineClass, classify
from billing_jobs.payments.dunning import DunningInvoice, start_dunning
from billing_jobs.payments.gateway import PaymentResult, PaymentStatus
from billing_jobs.payments.method_rules import MANDATES, parse_kind
from billing_jobs.payments.retries import ExponentialPolicy, RetryPolicy
from billing_jobs.payments.state import (
    CollectionReport,
    default_method,
    dump_dunning,
    open_dunning_on_subscription,
    retry_features,
    state_row,
    subscription_status,
    upsert_state,
)
from billing_jobs.subscriptions.service import transition_subscription

NO_CLAIM = {"claim_attempt_id": None, "claimed_at": None}


def finish_attempt(
    engine: Engine,
    gateway: str,
    attempt_id: str,
    result: PaymentResult,
    now: datetime,
    report: CollectionReport,
    policy: RetryPolicy | None = None,
    *,
    at: datetime | None = None,
    token: str | None = None,
) -> Attempt:
    """Finalize the attempt with `result` (as of `at`, default `now`) and settle its invoice,
    in one transaction. Final attempts never change, and a duplicate or late outcome settles
    nothing again, except that a success whose invoice is still open is always marked paid
    (a crash of an older version, or a bulk writer, may have left it so). `token` is the
    payment method charged (default: the customer's current default)."""
    with engine.begin() as conn:
        store = LedgerAttemptStore(conn, gateway)
        current = store.get(attempt_id)
        inv = lock_invoice(conn, int(current.invoice_id))
        final = store.finalize(attempt_id, result, at or now)
        revived = None
        if final.status is AttemptStatus.FAILED and result.status is PaymentStatus.SUCCEEDED:
            revived = store.revive_not_charged(attempt_id, result, at or now)
            final = revived or final
        changed = current.status in UNRESOLVED or revived is not None
        paid_but_open = final.status is AttemptStatus.SUCCEEDED and inv.status in (
            "open",
            "uncollectible",
        )
        if changed or paid_but_open:
            settle(conn, gateway, final, inv, now, policy or ExponentialPolicy(), report, token)
    return final


def settle(
    conn: Connection,
    gateway: str,
    attempt: Attempt,
    inv: Any,
    now: datetime,
    policy: RetryPolicy,
    report: CollectionReport,
    token: str | None = None,
) -> None:
    """Apply a just-finalized (or still unresolved) attempt to its locked invoice `inv`."""
    if attempt.status is AttemptStatus.SUCCEEDED:
        _settle_paid(conn, gateway, attempt, inv, now, report)
    elif attempt.status in UNRESOLVED:
        # Processing (UPI) or unknown: the invoice stays claimed until the janitor resolves it.
        upsert_state(conn, inv.id, gateway, now, next_retry_at=None,
                     claim_attempt_id=int(attempt.attempt_id), claimed_at=attempt.created_at)  # fmt: skip
        report.pending.append(inv.id)
    else:
        _settle_declined(conn, gateway, attempt, inv, now, policy, report, token)


def _settle_paid(
    conn: Connection, gateway: str, a: Attempt, inv: Any, now: datetime, report: CollectionReport
) -> None:
    changed = False
    if inv.status in ("open", "uncollectible"):
        try:
            mark_invoice_paid(conn, inv.id, at=a.updated_at)
            changed = True
        except InvalidTransitionError as e:  # e.g. part-paid another way: a person decides
            report.skipped[inv.id] = f"attempt {a.attempt_id} succeeded but {e}"
    # Dunning keeps its state: the next dunning run records the "recovered" notification.
    upsert_state(conn, inv.id, gateway, now, next_retry_at=None, closed=1, **NO_CLAIM)
    sub_id = inv.subscription_id
    if (
        sub_id is not None
        and not open_dunning_on_subscription(conn, sub_id)
        and subscription_status(conn, sub_id) in ("past_due", "unpaid")  # unpaid: restricted
    ):
        _move(conn, sub_id, "active", now, "payment_recovered")
    if changed:
        report.paid.append(inv.id)
        report.collected_minor[a.currency] = report.collected_minor.get(a.currency, 0) + (
            a.amount_minor
        )


def _settle_declined(
    conn: Connection,
    gateway: str,
    a: Attempt,
    inv: Any,
    now: datetime,
    policy: RetryPolicy,
    report: CollectionReport,
    token: str | None,
) -> None:
    report.failed.append(inv.id)
    if inv.status != "open" or inv.amount_due_minor <= inv.amount_paid_minor:
        # Settled another way meanwhile (voided, written off): nothing left to collect.
        upsert_state(conn, inv.id, gateway, now, next_retry_at=None, closed=1, **NO_CLAIM)
        return
    method = default_method(conn, inv.customer_id, gateway)
    charged = token or (method.gateway_token if method is not None else "-")
    charge = InvoiceCharge(str(inv.id), "-", charged, a.amount_minor, a.currency)
    mandate = method is not None and parse_kind(method.kind) in MANDATES
    attempts = LedgerAttemptStore(conn, gateway).attempts(str(inv.id))
    ctx = retry_context(charge, attempts, gateway, mandate=mandate,
                        features=retry_features(method))  # fmt: skip
    decision = policy.next_attempt(ctx) if ctx else None
    next_at = decision.at if decision is not None and decision.retry else None
    row = state_row(conn, inv.id)
    dunning = row.dunning_json if row is not None else None
    if not dunning:
        dunning = dump_dunning(
            start_dunning(
                DunningInvoice(str(inv.id), str(inv.customer_id), a.amount_minor, a.currency),
                a.updated_at,
            )
        )
    values: dict[str, Any] = {"next_retry_at": next_at, "dunning_json": dunning, **NO_CLAIM}
    if classify(gateway, a.decline_code) is not DeclineClass.SOFT:
        # Never retried automatically on this method, whoever asks (the pre-charge check).
        values |= {"declined_token": charged, "declined_code": a.decline_code}
    upsert_state(conn, inv.id, gateway, now, **values)
    if next_at is not None:
        report.retries_scheduled[inv.id] = next_at.isoformat()
    sub_id = inv.subscription_id
    if sub_id is not None and subscription_status(conn, sub_id) in ("active", "trialing"):
        _move(conn, sub_id, "past_due", now, "payment_failed")


def _move(conn: Connection, sub_id: int, to: str, now: datetime, reason: str) -> bool:
    """A subscription status change inside the settling transaction; one the subscription no
    longer allows (paused or canceled meanwhile, history past `now`) is skipped, never failing
    the payment it follows."""
    try:
        with conn.begin_nested():
            transition_subscription(conn, sub_id, to, at=now, reason=reason)
    except (InvalidTransitionError, ValidationError):
        return False
    return True


def settle_success(
    engine: Engine, gateway: str, invoice_id: int, now: datetime, report: CollectionReport
) -> bool:
    """Mark `invoice_id` paid if an attempt of it succeeded and it is still open (or written
    off): True when it was. Safe to repeat."""
    pa = s.payment_attempts
    with engine.begin() as conn:
        inv = lock_invoice(conn, invoice_id)
        row = conn.execute(
            select(pa).where(pa.c.invoice_id == invoice_id, pa.c.status == "succeeded")
        ).first()
        if row is None or inv.status not in ("open", "uncollectible"):
            return False
        before = len(report.paid)
        _settle_paid(conn, gateway, LedgerAttemptStore._attempt(row), inv, now, report)
        return len(report.paid) > before


def settle_declined_orphan(
    engine: Engine, gateway: str, invoice_id: int, now: datetime, policy: RetryPolicy,
    report: CollectionReport,
) -> bool:  # fmt: skip
    """Schedule the retry and start dunning for an open invoice whose last attempt failed but
    that has no dunning state (left so by a crash of an older version or a bulk writer)."""
    pa = s.payment_attempts
    with engine.begin() as conn:
        inv = lock_invoice(conn, invoice_id)
        last = conn.execute(
            select(pa).where(pa.c.invoice_id == invoice_id).order_by(pa.c.attempt_number.desc())
        ).first()
        st = state_row(conn, invoice_id)
        if (
            inv.status != "open"
            or last is None
            or last.status != "failed"
            or (st is not None and (st.dunning_json or st.closed))
        ):
            return False
        _settle_declined(conn, gateway, LedgerAttemptStore._attempt(last), inv, now, policy,
                         report, None)  # fmt: skip
        return True
