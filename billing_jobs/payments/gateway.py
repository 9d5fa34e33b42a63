"""The `Gateway` port: what billing needs from a payment gateway (Stripe, Razorpay, simulated).

Money is integer minor units + ISO currency. Adapters live in `ingestion/gateways/`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Generic, Protocol, TypeVar, runtime_checkable


class PaymentStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PENDING = "pending"
    REQUIRES_ACTION = "requires_action"


class GatewayError(Exception):
    """The gateway rejected the request or answered something we cannot use (outcome known)."""

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.code = code
        self.status = status


class GatewayTimeout(GatewayError):
    """No answer in time: the charge may or may not have happened. Resolve by asking, never retry."""


class NotFound(GatewayError):
    """The requested object does not exist at the gateway."""


class Unsupported(GatewayError):
    """The gateway has no API for this (e.g. Razorpay has no events or balance listing)."""


@dataclass(frozen=True)
class Customer:
    gateway_customer_id: str
    email: str | None = None
    name: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PaymentMethod:
    """A gateway token for a payment instrument. Never a PAN, CVV or UPI PIN."""

    token: str
    kind: str  # card | upi | netbanking | wallet | upi_mandate | card_mandate
    customer_id: str | None = None
    brand: str | None = None
    last4: str | None = None
    exp_month: int | None = None
    exp_year: int | None = None
    issuer: str | None = None


@dataclass(frozen=True)
class PaymentResult:
    """Outcome of one charge. A decline is a result (status failed), not an exception."""

    status: PaymentStatus
    gateway_payment_id: str | None
    amount_minor: int
    currency: str
    decline_code: str | None = None
    decline_message: str | None = None
    idempotency_key: str | None = None
    created_at: datetime | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.status is PaymentStatus.SUCCEEDED

    @property
    def declined(self) -> bool:
        return self.status is PaymentStatus.FAILED


@dataclass(frozen=True)
class Refund:
    gateway_refund_id: str
    gateway_payment_id: str
    amount_minor: int
    currency: str
    status: str
    created_at: datetime | None = None


@dataclass(frozen=True)
class Dispute:
    gateway_dispute_id: str
    gateway_payment_id: str
    amount_minor: int
    currency: str
    reason: str
    status: str
    created_at: datetime | None = None


@dataclass(frozen=True)
class BalanceTransaction:
    """A movement in the gateway balance: gross amount, gateway fee and tax on that fee."""

    gateway_txn_id: str
    source_id: str | None
    kind: str  # charge | refund | adjustment | payout ...
    amount_minor: int
    fee_minor: int
    fee_tax_minor: int
    net_minor: int
    currency: str
    created_at: datetime | None = None
    available_on: datetime | None = None


@dataclass(frozen=True)
class Payout:
    """A settlement batch paid out to the merchant's bank account."""

    gateway_payout_id: str
    amount_minor: int
    currency: str
    status: str
    arrival_at: datetime | None = None
    fee_minor: int = 0
    fee_tax_minor: int = 0
    utr: str | None = None


@dataclass(frozen=True)
class GatewayEvent:
    event_id: str
    type: str
    created_at: datetime
    object_id: str | None
    data: Mapping[str, object] = field(default_factory=dict)


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """Items since a cursor; pass `next_cursor` back to continue. `None` means nothing more yet."""

    items: Sequence[T]
    next_cursor: str | None


@runtime_checkable
class Gateway(Protocol):
    """What billing calls. Every method may raise `GatewayError`; `charge` may raise `GatewayTimeout`."""

    name: str

    def create_customer(
        self,
        *,
        email: str | None = None,
        name: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Customer: ...

    def attach_payment_method(self, customer_id: str, token: str) -> PaymentMethod: ...

    def detach_payment_method(self, token: str) -> None: ...

    def list_payment_methods(self, customer_id: str) -> list[PaymentMethod]: ...

    def charge(
        self,
        customer_id: str,
        payment_method: str,
        amount_minor: int,
        currency: str,
        idempotency_key: str,
        *,
        off_session: bool = True,
        metadata: Mapping[str, str] | None = None,
    ) -> PaymentResult: ...

    def refund(
        self,
        gateway_payment_id: str,
        amount_minor: int | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Refund: ...

    def fetch_payment(self, gateway_payment_id: str) -> PaymentResult: ...

    def find_payment(self, idempotency_key: str) -> PaymentResult | None:
        """The payment created with this idempotency key (searched via metadata), or None."""
        ...

    def list_payments(self, cursor: str | None = None, limit: int = 100) -> Page[PaymentResult]: ...

    def list_refunds(self, cursor: str | None = None, limit: int = 100) -> Page[Refund]: ...

    def list_disputes(self, cursor: str | None = None, limit: int = 100) -> Page[Dispute]: ...

    def list_balance_transactions(
        self, cursor: str | None = None, limit: int = 100
    ) -> Page[BalanceTransaction]: ...

    def list_payouts(self, cursor: str | None = None, limit: int = 100) -> Page[Payout]: ...

    def list_events(self, cursor: str | None = None, limit: int = 100) -> Page[GatewayEvent]: ...


IDEMPOTENCY_METADATA_KEY = "paysight_idempotency_key"


def idempotency_key_for(invoice_id: str, attempt_number: int) -> str:
    """Deterministic key per (invoice, attempt): a retried request can never become a 2nd charge."""
    if not invoice_id:
        raise ValueError("invoice_id is required for an idempotency key")
    if attempt_number < 1:
        raise ValueError(f"attempt_number must be >= 1, got {attempt_number}")
    return f"paysight-{invoice_id}-attempt-{attempt_number}"
