"""Charging an invoice safely: record the attempt before the gateway call, finalize after, and
resolve unknown outcomes by asking the gateway — never by charging again.

Written against two small protocols (`AttemptStore`, the `Gateway` port) so the ledger can supply
its own store; `SqliteAttemptStore` is a complete implementation with its own table.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from billing_jobs.payments.gateway import (
    Gateway,
    GatewayError,
    GatewayTimeout,
    PaymentResult,
    PaymentStatus,
    idempotency_key_for,
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


def collect_invoice(
    store: AttemptStore, gateway: Gateway, invoice: InvoiceCharge, now: datetime
) -> Attempt:
    """Make one charge attempt for `invoice`. Raises `AlreadyPaid` / `AttemptInFlight` instead of
    charging when that could double-charge; a timeout returns the attempt as UNKNOWN."""
    attempt = store.record_pending(invoice, now)  # durable BEFORE the gateway hears of it
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
        return store.finalize(attempt.attempt_id, rejected, now)
    return store.finalize(attempt.attempt_id, result, now)


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


def resolve_unknown_attempts(
    store: AttemptStore,
    gateway: Gateway,
    now: datetime,
    stale_after: timedelta = timedelta(minutes=15),
) -> list[Attempt]:
    """The janitor: ask the gateway what happened to every unresolved attempt. Never charges."""
    resolved: list[Attempt] = []
    for attempt in store.list_unknown(stale_before=now - stale_after):
        try:
            if attempt.gateway_payment_id:
                result: PaymentResult | None = gateway.fetch_payment(attempt.gateway_payment_id)
            else:
                result = gateway.find_payment(attempt.idempotency_key)
        except GatewayTimeout:
            continue  # still in the dark; try again next run
        if result is None:
            if attempt.status is AttemptStatus.PENDING or attempt.updated_at <= now - stale_after:
                # The gateway never saw the request: the attempt failed without charging.
                result = PaymentResult(
                    PaymentStatus.FAILED,
                    None,
                    attempt.amount_minor,
                    attempt.currency,
                    decline_code=NOT_CHARGED,
                )
            else:
                continue
        if result.status is PaymentStatus.PENDING and attempt.status is AttemptStatus.PROCESSING:
            continue
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


SCHEMA = """
create table if not exists collection_attempts (
  attempt_id text primary key,
  invoice_id text not null,
  attempt_number integer not null,
  idempotency_key text not null unique,
  status text not null,
  amount_minor integer not null,
  currency text not null,
  gateway_payment_id text,
  decline_code text,
  created_at text not null,
  updated_at text not null,
  unique (invoice_id, attempt_number)
);
-- The database itself forbids two successes or two unresolved attempts for one invoice.
create unique index if not exists collection_attempts_one_success
  on collection_attempts(invoice_id) where status = 'succeeded';
create unique index if not exists collection_attempts_one_open
  on collection_attempts(invoice_id) where status in ('pending', 'processing', 'unknown');
"""


class SqliteAttemptStore:
    """`AttemptStore` on SQLite (stdlib), in its own table; safe across processes and crashes."""

    def __init__(self, path: str | Path) -> None:
        self.conn = sqlite3.connect(str(path), isolation_level=None, timeout=30)
        self.conn.row_factory = sqlite3.Row
        if str(path) != ":memory:":
            self.conn.execute("pragma journal_mode=wal")
        self.conn.execute("pragma synchronous=full")
        self.conn.executescript(SCHEMA)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("begin immediate")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("rollback")
            raise
        self.conn.execute("commit")

    @staticmethod
    def _attempt(r: sqlite3.Row) -> Attempt:
        return Attempt(
            attempt_id=r["attempt_id"],
            invoice_id=r["invoice_id"],
            attempt_number=r["attempt_number"],
            idempotency_key=r["idempotency_key"],
            status=AttemptStatus(r["status"]),
            amount_minor=r["amount_minor"],
            currency=r["currency"],
            created_at=datetime.fromisoformat(r["created_at"]),
            updated_at=datetime.fromisoformat(r["updated_at"]),
            gateway_payment_id=r["gateway_payment_id"],
            decline_code=r["decline_code"],
        )

    def _get(self, c: sqlite3.Connection, attempt_id: str) -> Attempt:
        row = c.execute(
            "select * from collection_attempts where attempt_id=?", (attempt_id,)
        ).fetchone()
        if row is None:
            raise CollectionError(f"no such attempt {attempt_id!r}")
        return self._attempt(row)

    def record_pending(self, invoice: InvoiceCharge, now: datetime) -> Attempt:
        stamp = _iso(now)
        with self._tx() as c:
            rows = c.execute(
                "select status from collection_attempts where invoice_id=?", (invoice.invoice_id,)
            ).fetchall()
            statuses = {r["status"] for r in rows}
            if AttemptStatus.SUCCEEDED in statuses:
                raise AlreadyPaid(f"invoice {invoice.invoice_id} is already paid")
            if statuses & UNRESOLVED:
                raise AttemptInFlight(
                    f"invoice {invoice.invoice_id} has an unresolved attempt; run the janitor first"
                )
            number = len(rows) + 1
            key = idempotency_key_for(invoice.invoice_id, number)
            c.execute(
                "insert into collection_attempts values (?,?,?,?,?,?,?,null,null,?,?)",
                (key, invoice.invoice_id, number, key, AttemptStatus.PENDING.value,
                 invoice.amount_minor, invoice.currency, stamp, stamp),
            )  # fmt: skip
            return self._get(c, key)

    def finalize(self, attempt_id: str, result: PaymentResult, now: datetime) -> Attempt:
        status = _STATUS_FROM_RESULT[result.status]
        with self._tx() as c:
            current = self._get(c, attempt_id)
            if current.status not in UNRESOLVED:
                return current  # final states never change (duplicate/late outcomes)
            c.execute(
                "update collection_attempts set status=?, gateway_payment_id=coalesce(?, gateway_payment_id),"
                " decline_code=?, updated_at=? where attempt_id=?",
                (
                    status.value,
                    result.gateway_payment_id,
                    result.decline_code,
                    _iso(now),
                    attempt_id,
                ),
            )
            return self._get(c, attempt_id)

    def mark_unknown(self, attempt_id: str, now: datetime) -> Attempt:
        with self._tx() as c:
            current = self._get(c, attempt_id)
            if current.status is not AttemptStatus.PENDING:
                return current
            c.execute(
                "update collection_attempts set status='unknown', updated_at=? where attempt_id=?",
                (_iso(now), attempt_id),
            )
            return self._get(c, attempt_id)

    def list_unknown(self, stale_before: datetime) -> list[Attempt]:
        rows = self.conn.execute(
            "select * from collection_attempts where status in ('unknown','processing')"
            " or (status='pending' and updated_at<=?) order by created_at, attempt_id",
            (_iso(stale_before),),
        ).fetchall()
        return [self._attempt(r) for r in rows]

    def has_success(self, invoice_id: str) -> bool:
        row = self.conn.execute(
            "select 1 from collection_attempts where invoice_id=? and status='succeeded'",
            (invoice_id,),
        ).fetchone()
        return row is not None

    def get_by_key(self, idempotency_key: str) -> Attempt | None:
        row = self.conn.execute(
            "select * from collection_attempts where idempotency_key=?", (idempotency_key,)
        ).fetchone()
        return self._attempt(row) if row else None

    def attempts(self, invoice_id: str | None = None) -> list[Attempt]:
        sql = "select * from collection_attempts"
        rows = (
            self.conn.execute(sql + " where invoice_id=? order by attempt_number", (invoice_id,))
            if invoice_id
            else self.conn.execute(sql + " order by invoice_id, attempt_number")
        ).fetchall()
        return [self._attempt(r) for r in rows]

    def close(self) -> None:
        self.conn.close()


def _iso(dt: datetime) -> str:
    if dt.tzinfo is None:
        raise CollectionError("times must be timezone-aware")
    # Fixed-width UTC strings sort correctly in SQL comparisons.
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
