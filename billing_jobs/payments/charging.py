"""Charging an invoice safely: record the attempt before the gateway call, finalize after, and
resolve unknown outcomes by asking the gateway — never by charging again.

Written against two small protocols (`AttemptStore`, the `Gateway` port); the ledger's store is
`attempt_store.LedgerAttemptStore` (and `batch.BatchAttemptStore` for bulk callers).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from billing_jobs.payments.gateway import (
    Gateway,
    GatewayError,
    GatewayTimeout,
    PaymentResult,
    PaymentStatus,
)
from billing_jobs.payments.retries import RetryContext


class AttemptStatus(StrEnum):
    PENDING = "pending"  # recorded, gateway not (known to be) called yet
    PROCESSING = "processing"  # the gateway accepted it and has not decided (UPI)
    UNKNOWN = "unknown"  # the call timed out: the charge may or may not exist
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REQUIRES_ACTION = "requires_action"


UNRESOLVED = frozenset({AttemptStatus.PENDING, AttemptStatus.PROCESSING, AttemptStatus.UNKNOWN})
NOT_CHARGED = "gateway_timeout"  # decline code for a timed-out request the gateway never saw


class CollectionError(Exception):
    """Collection refused: the invoice is already paid or an attempt is still unresolved."""


class AttemptInFlight(CollectionError):
    pass


class AlreadyPaid(CollectionError):
    pass


class NotCollectible(CollectionError):
    """The invoice is not open (draft, void or written off): nothing may be charged."""


class RetryNotDue(CollectionError):
    """The pre-charge check refused: the last attempt was declined and no retry is due (a hard
    decline on this method is never retried; a soft one waits for its scheduled time)."""


@dataclass(frozen=True)
class InvoiceCharge:
    """What to collect: the ledger's invoice reduced to what the gateway needs."""

    invoice_id: str
    customer_id: str  # the gateway's customer id
    payment_method: str  # a gateway token
    amount_minor: int
    currency: str
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.amount_minor <= 0:
            raise CollectionError(
                f"invoice {self.invoice_id}: amount must be positive, got {self.amount_minor}"
            )


@dataclass(frozen=True)
class Attempt:
    attempt_id: str
    invoice_id: str
    attempt_number: int
    idempotency_key: str
    status: AttemptStatus
    amount_minor: int
    currency: str
    created_at: datetime
    updated_at: datetime
    gateway_payment_id: str | None = None
    decline_code: str | None = None


class AttemptStore(Protocol):
    """Where attempts live. Implementations must make `record_pending` atomic: it refuses when
    the invoice has a success or an unresolved attempt, and numbers attempts 1, 2, 3..."""

    def record_pending(self, invoice: InvoiceCharge, now: datetime) -> Attempt: ...

    def finalize(self, attempt_id: str, result: PaymentResult, now: datetime) -> Attempt: ...

    def mark_unknown(self, attempt_id: str, now: datetime) -> Attempt: ...

    def list_unknown(self, stale_before: datetime) -> list[Attempt]:
        """UNKNOWN and PROCESSING attempts, plus PENDING ones older than `stale_before`
        (a process died between recording and finalizing)."""
        ...

    def has_success(self, invoice_id: str) -> bool: ...

    def get_by_key(self, idempotency_key: str) -> Attempt | None: ...


_STATUS_FROM_RESULT = {
    PaymentStatus.SUCCEEDED: AttemptStatus.SUCCEEDED,
    PaymentStatus.FAILED: AttemptStatus.FAILED,
    PaymentStatus.PENDING: AttemptStatus.PROCESSING,
    PaymentStatus.REQUIRES_ACTION: AttemptStatus.REQUIRES_ACTION,
}


Finish = Callable[["Attempt", PaymentResult], "Attempt"]


def collect_invoice(
    store: AttemptStore,
    gateway: Gateway,
    invoice: InvoiceCharge,
    now: datetime,
    finish: Finish | None = None,
) -> Attempt:
    """Make one charge attempt for `invoice`. Raises `AlreadyPaid` / `AttemptInFlight` (or the
    store's pre-charge refusals) instead of charging when that could double-charge; a timeout
    returns the attempt as UNKNOWN. `finish(attempt, result)` writes the outcome (default: the
    store's `finalize`); the ledger's collection finalizes the attempt and updates the invoice
    there, in one transaction."""
    attempt = store.record_pending(invoice, now)  # durable BEFORE the gateway hears of it
    if finish is None:

        def finish(a: Attempt, result: PaymentResult) -> Attempt:
            return store.finalize(a.attempt_id, result, now)

    metadata = {
        **invoice.metadata,
        "invoice_id": invoice.invoice_id,
        "attempt_number": str(attempt.attempt_number),
    }
    try:
        result = gateway.charge(
            invoice.customer_id,
            invoice.payment_method,
            invoice.amount_minor,
            invoice.currency,
            attempt.idempotency_key,
            off_session=True,
            metadata=metadata,
        )
    except GatewayTimeout:
        return store.mark_unknown(attempt.attempt_id, now)
    except GatewayError as e:
        # A definite rejection (bad request, missing method): nothing was charged.
        rejected = PaymentResult(
            PaymentStatus.FAILED,
            None,
            invoice.amount_minor,
            invoice.currency,
            decline_code=e.code or "gateway_error",
        )
        return finish(attempt, rejected)
    return finish(attempt, result)


def apply_gateway_outcome(
    store: AttemptStore, result: PaymentResult, now: datetime
) -> Attempt | None:
    """Apply an outcome learned out of band (a webhook): duplicates and late arrivals are harmless
    because final attempts never change and unknown keys are ignored."""
    if not result.idempotency_key:
        return None
    attempt = store.get_by_key(result.idempotency_key)
    if attempt is None or attempt.status not in UNRESOLVED:
        return attempt
    if result.status is PaymentStatus.PENDING and attempt.status is AttemptStatus.PROCESSING:
        return attempt
    return store.finalize(attempt.attempt_id, result, now)


def gateway_truth(
    gateway: Gateway, attempt: Attempt, now: datetime, stale_after: timedelta
) -> PaymentResult | None:
    """What the gateway says became of an unresolved attempt, or None to ask again later (no
    answer, still processing, or a timed-out request too recent to judge). An attempt the
    gateway never saw is a failure without a charge (`NOT_CHARGED`). Never charges."""
    try:
        if attempt.gateway_payment_id:
            result: PaymentResult | None = gateway.fetch_payment(attempt.gateway_payment_id)
        else:
            result = gateway.find_payment(attempt.idempotency_key)
    except GatewayTimeout:
        return None  # still in the dark; try again next run
    if result is None:
        if attempt.status is AttemptStatus.PENDING or attempt.updated_at <= now - stale_after:
            # The gateway never saw the request: the attempt failed without charging.
            return PaymentResult(
                PaymentStatus.FAILED,
                None,
                attempt.amount_minor,
                attempt.currency,
                decline_code=NOT_CHARGED,
            )
        return None
    if result.status is PaymentStatus.PENDING and attempt.status is AttemptStatus.PROCESSING:
        return None
    return result


def resolve_unknown_attempts(
    store: AttemptStore,
    gateway: Gateway,
    now: datetime,
    stale_after: timedelta = timedelta(minutes=15),
) -> list[Attempt]:
    """Ask the gateway what happened to every unresolved attempt and finalize the attempts (the
    ledger's janitor, `janitor.resolve_unknown`, also settles their invoices). Never charges."""
    resolved: list[Attempt] = []
    for attempt in store.list_unknown(stale_before=now - stale_after):
        result = gateway_truth(gateway, attempt, now, stale_after)
        if result is not None:
            resolved.append(store.finalize(attempt.attempt_id, result, now))
    return resolved


def retry_context(
    invoice: InvoiceCharge,
    attempts: Sequence[Attempt],
    gateway: str,
    *,
    mandate: bool = False,
    features: Mapping[str, object] | None = None,
) -> RetryContext | None:
    """The retry policy's input from an invoice's attempt history; None when there is nothing to
    retry (no attempts, already paid, an attempt unresolved, or the last one did not fail)."""
    if not attempts:
        return None
    ordered = sorted(attempts, key=lambda a: a.attempt_number)
    last = ordered[-1]
    if any(a.status is AttemptStatus.SUCCEEDED or a.status in UNRESOLVED for a in ordered):
        return None
    if last.status is not AttemptStatus.FAILED:
        return None  # requires_action: the customer must act, no automatic retry
    first_failed = next(a for a in ordered if a.status is AttemptStatus.FAILED)
    return RetryContext(
        key=invoice.invoice_id,
        gateway=gateway,
        decline_code=last.decline_code,
        first_failed_at=first_failed.updated_at,
        last_failed_at=last.updated_at,
        attempts_made=len(ordered),
        amount_minor=invoice.amount_minor,
        currency=invoice.currency,
        mandate=mandate,
        features=dict(features or {}),
    )
