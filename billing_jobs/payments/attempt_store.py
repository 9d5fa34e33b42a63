"""`AttemptStore` on the ledger's `payment_attempts` table, so attempts live beside their invoices.

The table's statuses are pending/succeeded/failed/unknown: PROCESSING (the gateway accepted and has
not decided) is stored as `pending` with a gateway payment id, and REQUIRES_ACTION as `failed` with
an action decline code (the customer must authenticate; the retry policy never retries it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from billing_jobs.errors import NotFoundError
from billing_jobs.ledger import schema as s
from billing_jobs.ledger.session import Target, write_conn
from billing_jobs.payments.charging import (
    NOT_CHARGED,
    AlreadyPaid,
    Attempt,
    AttemptInFlight,
    AttemptStatus,
    CollectionError,
    InvoiceCharge,
    NotCollectible,
    RetryNotDue,
)
from billing_jobs.payments.gateway import PaymentResult, PaymentStatus, idempotency_key_for

_PA = s.payment_attempts
_CS = s.payments_collection_state
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


def _state(conn: Connection, inv_id: int) -> Any:
    return conn.execute(select(_CS).where(_CS.c.invoice_id == inv_id)).first()


def _check_collectible(
    inv: Any, attempts: Sequence[Any], state: Any, token: str, now: datetime
) -> None:
    """The pre-charge check (after the success / in-flight checks): raise unless a charge of
    `token` is allowed now."""
    if inv.status == "paid":
        raise AlreadyPaid(f"invoice {inv.id} is already paid")
    if inv.status != "open":
        raise NotCollectible(f"invoice {inv.id} is {inv.status}; only open invoices are charged")
    if inv.amount_due_minor <= inv.amount_paid_minor:
        raise AlreadyPaid(f"invoice {inv.id} has nothing left to pay")
    if state is not None and state.declined_token and state.declined_token == token:
        raise RetryNotDue(
            f"invoice {inv.id}: payment method {token} was declined with {state.declined_code}, "
            "which is never retried automatically; the customer needs a new payment method"
        )
    failed = [a for a in attempts if a.status == "failed"]
    if not failed:
        return
    last = failed[-1]
    if state is None or state.next_retry_at is None:
        raise RetryNotDue(
            f"invoice {inv.id}: attempt {last.attempt_number} was declined "
            f"({last.decline_code}) and no retry is scheduled"
        )
    if state.next_retry_at > now:
        raise RetryNotDue(
            f"invoice {inv.id}: the next retry is scheduled at {state.next_retry_at.isoformat()}"
        )


def _claim(
    conn: Connection, inv_id: int, gateway: str, state: Any, attempt_id: int, now: datetime
) -> None:
    """Claim the invoice for `attempt_id` and consume its scheduled retry: a compare-and-set on
    the claim read under the lock, so two collectors can never both hold it."""
    values = {"claim_attempt_id": attempt_id, "claimed_at": now, "next_retry_at": None,
              "updated_at": now}  # fmt: skip
    if state is None:
        try:
            with conn.begin_nested():
                conn.execute(
                    insert(_CS),
                    {"invoice_id": inv_id, "gateway": gateway, "dunning_json": None, "closed": 0,
                     **values},
                )  # fmt: skip
            return
        except IntegrityError:
            raise AttemptInFlight(f"invoice {inv_id} was claimed by another process") from None
    expected = _CS.c.claim_attempt_id
    same = (
        expected.is_(None) if state.claim_attempt_id is None else expected == state.claim_attempt_id
    )
    done = conn.execute(update(_CS).where(_CS.c.invoice_id == inv_id, same).values(**values))
    if done.rowcount != 1:
        raise AttemptInFlight(f"invoice {inv_id} was claimed by another process")


class LedgerAttemptStore:
    """Attempts in the ledger. `target` is an Engine (each call its own transaction, SQLite
    BEGIN IMMEDIATE / Postgres row lock on the invoice) or a Connection (the caller's
    transaction, for batch work such as the simulator).

    `record_pending` is the pre-charge check every charge passes: the invoice must be open, with
    no success and no unresolved attempt; after a decline a retry must be scheduled and due
    (`payments_collection_state.next_retry_at`), and a method whose decline was hard is refused.
    The attempt is recorded with the invoice's claim (the "charge in flight") in one
    transaction: on PostgreSQL under `SELECT ... FOR UPDATE SKIP LOCKED` on the invoice (another
    collector skips it), on SQLite under BEGIN IMMEDIATE, with a compare-and-set on the claim.
    `keeps_own_schedule=True` is only for a caller that holds the retry schedule itself (the
    simulated world, single process, which saves it with `batch.save_collection_states`)."""

    def __init__(self, target: Target, gateway: str, *, keeps_own_schedule: bool = False) -> None:
        if not gateway:
            raise CollectionError("a gateway name is required")
        self.target = target
        self.gateway = gateway
        self.exclusive = not keeps_own_schedule

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

    def get(self, attempt_id: str) -> Attempt:
        with write_conn(self.target) as conn:
            return self._get(conn, attempt_id)

    def _lock_invoice(self, conn: Connection, inv_id: int) -> Any:
        inv = s.invoices
        q = select(inv).where(inv.c.id == inv_id)
        if conn.dialect.name == "sqlite":
            row = conn.execute(q).first()  # BEGIN IMMEDIATE already holds the write lock
        else:
            row = conn.execute(q.with_for_update(skip_locked=self.exclusive)).first()
            if row is None and conn.execute(q).first() is not None:
                raise AttemptInFlight(f"invoice {inv_id} is being collected by another process")
        if row is None:
            raise NotFoundError(f"invoice {inv_id} does not exist")
        return row

    def record_pending(self, invoice: InvoiceCharge, now: datetime) -> Attempt:
        now = _aware(now)
        inv_id = _invoice_pk(invoice.invoice_id)
        with write_conn(self.target) as conn:
            inv = self._lock_invoice(conn, inv_id)
            rows = conn.execute(
                select(_PA.c.status, _PA.c.decline_code, _PA.c.attempt_number)
                .where(_PA.c.invoice_id == inv_id)
                .order_by(_PA.c.attempt_number)
            ).all()
            statuses = {r.status for r in rows}
            if "succeeded" in statuses:
                raise AlreadyPaid(f"invoice {inv_id} is already paid")
            if statuses & {"pending", "unknown"}:
                raise AttemptInFlight(
                    f"invoice {inv_id} has an unresolved attempt; run the janitor first"
                )
            state = None
            if self.exclusive:
                state = _state(conn, inv_id)
                _check_collectible(inv, rows, state, invoice.payment_method, now)
            number = len(rows) + 1
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
            if self.exclusive:
                _claim(conn, inv_id, self.gateway, state, int(row.id), now)
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

    def revive_not_charged(
        self, attempt_id: str, result: PaymentResult, now: datetime
    ) -> Attempt | None:
        """An attempt failed as `NOT_CHARGED` (the gateway had no record of the request when
        the janitor asked) that the gateway now reports succeeded: the gateway's truth wins,
        unless a later attempt was made (then a person decides). None when it does not apply."""
        now = _aware(now)
        with write_conn(self.target) as conn:
            a = self._get(conn, attempt_id)
            if (
                a.status is not AttemptStatus.FAILED
                or a.decline_code != NOT_CHARGED
                or result.status is not PaymentStatus.SUCCEEDED
            ):
                return None
            later = conn.execute(
                select(func.count()).where(
                    _PA.c.invoice_id == int(a.invoice_id),
                    _PA.c.attempt_number > a.attempt_number,
                )
            ).scalar_one()
            if later:
                return None
            conn.execute(
                update(_PA)
                .where(_PA.c.id == int(attempt_id), _PA.c.status == "failed")
                .values(
                    status="succeeded",
                    decline_code=None,
                    gateway_payment_id=result.gateway_payment_id or a.gateway_payment_id,
                    finalized_at=now,
                )
            )
            return self._get(conn, attempt_id)

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
