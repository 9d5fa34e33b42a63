"""The janitor: resolve unresolved attempts from the gateway's truth, and apply attempts
finalized out of band (webhooks). Never charges."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, select

from billing_jobs.ledger import schema as s
from billing_jobs.payments.attempt_store import LedgerAttemptStore
from billing_jobs.payments.charging import Attempt, InvoiceCharge, resolve_unknown_attempts
from billing_jobs.payments.collection import apply_outcome
from billing_jobs.payments.gateway import Gateway
from billing_jobs.payments.method_rules import MANDATES, parse_kind
from billing_jobs.payments.retries import ExponentialPolicy, RetryPolicy
from billing_jobs.payments.state import CollectionReport, aware, default_method, retry_features


def resolve_unknown(
    engine: Engine, gateway: Gateway, now: datetime, policy: RetryPolicy | None = None
) -> CollectionReport:
    """The janitor: ask the gateway about unresolved attempts and apply what it says. Never
    charges."""
    now = aware(now)
    policy = policy or ExponentialPolicy()
    store = LedgerAttemptStore(engine, gateway.name)
    report = CollectionReport()
    for a in resolve_unknown_attempts(store, gateway, now):
        _apply_attempt(engine, store, a, now, policy, report)
    return report


def _apply_attempt(
    engine: Engine,
    store: LedgerAttemptStore,
    a: Attempt,
    now: datetime,
    policy: RetryPolicy,
    report: CollectionReport,
) -> None:
    with engine.connect() as conn:
        r = conn.execute(select(s.invoices).where(s.invoices.c.id == int(a.invoice_id))).one()
        method = default_method(conn, r.customer_id, store.gateway)
    charge = InvoiceCharge(
        a.invoice_id, "-", method.gateway_token if method else "-", a.amount_minor, a.currency
    )
    mandate = method is not None and parse_kind(method.kind) in MANDATES
    apply_outcome(
        engine, store, charge, r.subscription_id, a, now, policy, mandate, report,
        retry_features(method),
    )  # fmt: skip


def apply_attempt_outcome(
    engine: Engine,
    gateway_name: str,
    attempt: Attempt,
    now: datetime,
    policy: RetryPolicy | None = None,
) -> CollectionReport:
    """Apply an attempt that was just finalized out of band (a webhook) to its invoice: paid
    exactly once, or a failure that schedules the retry and starts dunning, or still pending."""
    now = aware(now)
    report = CollectionReport()
    store = LedgerAttemptStore(engine, gateway_name)
    _apply_attempt(engine, store, attempt, now, policy or ExponentialPolicy(), report)
    return report
