"""`AttemptStore` on the ledger's `payment_attempts` table, so attempts live beside their invoices.

The table's statuses are pending/succeeded/failed/unknown: PROCESSING (the gateway accepted and has
not decided) is stored as `pending` with a gateway payment id, and REQUIRES_ACTION as `failed` with
an action decline code (the customer must authenticate; the retry policy never retries it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from billing_jobs.errors import NotFoundError
from billing_jobs.ledger import schema as s
from billing_jobs.ledger.session import Target, write_conn
from billing_jobs.payments.charging import (
    AlreadyPaid,
    Attempt,
    AttemptInFlight,
    AttemptStatus,
    CollectionError,
    InvoiceCharge,
)
from billing_jobs.payments.gateway import PaymentResult, PaymentStatus, idempotency_key_for

_PA = s.payment_attempts
ACTION_DEFAULT_CODE = "authentication_required"


def outcome_values(result: PaymentResult, finalized_at: Any) -> dict[str, Any]:
    """The attempt columns a gateway outcome sets. A pending outcome leaves the attempt open;
    one that needs customer action fails it (an off-session charge cannot complete it).
    `finalized_at` is written as given (a datetime, or its stored form on the raw-SQL path)."""
    values: dict[str, Any] = {"decline_code": result.decline_code}
    if result.gateway_payment_id:
        values["gateway_payment_id"] = result.gateway_payment_id
    if result.status is PaymentStatus.PENDING:
        values |= {"status": "pending", "decline_code": None}
    elif result.status is PaymentStatus.REQUIRES_ACTION:
        values |= {
            "status": "failed",
            "decline_code": result.decline_code or ACTION_DEFAULT_CODE,
            "finalized_at": finalized_at,
        }
    else:
        values |= {"status": result.status.value, "finalized_at": finalized_at}
    return values


def _invoice_pk(invoice_id: str) -> int:
    try:
        return int(invoice_id)
    except (TypeError, ValueError):
        raise CollectionError(f"ledger invoice ids are integers, got {invoice_id!r}") from None


def _aware(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        raise CollectionError("times must be timezone-aware")
    return dt


class LedgerAttemptStore:
    """Attempts in the ledger. `target` is an Engine (each call its own transaction, SQLite
    BEGIN IMMEDIATE / Postgres row lock on the invoice) or a Connection (the caller's
    transaction, for batch work such as the simulator)."""

    def __init__(self, target: Target, gateway: str) -> None:
        if not gateway:
            raise CollectionError("a gateway name is required")
        self.target = target
        self.gateway = gateway

    @staticmethod
    def _attempt(r: Any) -> Attempt:
        if r.status == "pending" and r.gateway_payment_id:
            status = AttemptStatus.PROCESSING
        else:
            status = AttemptStatus(r.status)
        return Attempt(
            attempt_id=str(r.id),
            invoice_id=str(r.invoice_id),
            attempt_number=r.attempt_number,
            idempotency_key=r.idempotency_key,
            status=status,
            amount_minor=r.amount_minor,
            currency=r.currency,
            created_at=r.created_at,
            updated_at=r.finalized_at or r.created_at,
            gateway_payment_id=r.gateway_payment_id,
            decline_code=r.decline_code,
        )

    def _get(self, conn: Connection, attempt_id: str) -> Attempt:
        row = conn.execute(select(_PA).where(_PA.c.id == int(attempt_id))).first()
        if row is None:
            raise CollectionError(f"no such attempt {attempt_id!r}")
        return self._attempt(row)

    def record_pending(self, invoice: InvoiceCharge, now: datetime) -> Attempt:
        now = _aware(now)
        inv_id = _invoice_pk(invoice.invoice_id)
        with write_conn(self.target) as conn:
            if conn.dialect.name != "sqlite":
                # Serialize attempts per invoice; SQLite already holds the database write lock.
                conn.execute(
                    select(s.invoices.c.id).where(s.invoices.c.id == inv_id).with_for_update()
                )
            rows = conn.execute(select(_PA.c.status).where(_PA.c.invoice_id == inv_id)).all()
            statuses = {r.status for r in rows}
            if "succeeded" in statuses:
                raise AlreadyPaid(f"invoice {inv_id} is already paid")
            if statuses & {"pending", "unknown"}:
                raise AttemptInFlight(
                    f"invoice {inv_id} has an unresolved attempt; run the janitor first"
                )
            number = len(rows) + 1
            try:
                row = conn.execute(
                    insert(_PA).returning(*_PA.c),
                    {
                        "invoice_id": inv_id,
                        "attempt_number": number,
                        "idempotency_key": idempotency_key_for(invoice.invoice_id, number),
                        "status": "pending",
                        "gateway": self.gateway,
                        "gateway_payment_id": None,
                        "amount_minor": invoice.amount_minor,
                        "currency": invoice.currency,
                        "decline_code": None,
                        "created_at": now,
                        "finalized_at": None,
                    },
                ).one()
            except IntegrityError as e:
                raise NotFoundError(f"invoice {inv_id} does not exist ({e.orig})") from None
            return self._attempt(row)

    def finalize(self, attempt_id: str, result: PaymentResult, now: datetime) -> Attempt:
        now = _aware(now)
        values = outcome_values(result, now)
        with write_conn(self.target) as conn:
            # Only unresolved attempts change: final states ignore duplicate or late outcomes.
            row = conn.execute(
                update(_PA)
                .where(_PA.c.id == int(attempt_id), _PA.c.status.in_(("pending", "unknown")))
                .values(**values)
                .returning(*_PA.c)
            ).first()
            return self._attempt(row) if row is not None else self._get(conn, attempt_id)

    def mark_unknown(self, attempt_id: str, now: datetime) -> Attempt:
        _aware(now)
        with write_conn(self.target) as conn:
            current = self._get(conn, attempt_id)
            if current.status is not AttemptStatus.PENDING:
                return current
            conn.execute(update(_PA).where(_PA.c.id == int(attempt_id)).values(status="unknown"))
            return self._get(conn, attempt_id)

    def list_unknown(self, stale_before: datetime) -> list[Attempt]:
        _aware(stale_before)
        q = (
            select(_PA)
            .where(
                or_(
                    _PA.c.status == "unknown",
                    (_PA.c.status == "pending") & _PA.c.gateway_payment_id.is_not(None),
                    (_PA.c.status == "pending") & (_PA.c.created_at <= stale_before),
                )
            )
            .order_by(_PA.c.created_at, _PA.c.id)
        )
        with write_conn(self.target) as conn:
            return [self._attempt(r) for r in conn.execute(q)]

    def has_success(self, invoice_id: str) -> bool:
        q = select(func.count()).where(
            _PA.c.invoice_id == _invoice_pk(invoice_id), _PA.c.status == "succeeded"
        )
        with write_conn(self.target) as conn:
            return bool(conn.execute(q).scalar_one())

    def get_by_key(self, idempotency_key: str) -> Attempt | None:
        with write_conn(self.target) as conn:
            row = conn.execute(select(_PA).where(_PA.c.idempotency_key == idempotency_key)).first()
            return self._attempt(row) if row else None

    def attempts(self, invoice_id: str) -> list[Attempt]:
        """Every attempt of one invoice, in order (the input of `retry_context`)."""
        q = (
            select(_PA)
            .where(_PA.c.invoice_id == _invoice_pk(invoice_id))
            .order_by(_PA.c.attempt_number)
        )
        with write_conn(self.target) as conn:
            return [self._attempt(r) for r in conn.execute(q)]
