"""Reading a landed gateway event (Stripe event shape): the event types paysight applies and
strict field readers that reject a malformed payload with a message naming the field."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from billing_jobs.errors import ValidationError
from billing_jobs.payments.gateway import PaymentStatus


class EventStatus(StrEnum):
    APPLIED = "applied"  # changed the ledger
    IGNORED = "ignored"  # valid but changes nothing (duplicate outcome, stale or late event)
    SKIPPED = "skipped"  # an event type we do not apply
    UNMATCHED = "unmatched"  # the payment is not (yet) in the ledger: retried on later runs
    INVALID = "invalid"  # malformed payload: kept with the reason, never retried
    REJECTED = "rejected"  # contradicts the ledger (refund above capture, success after failure)
    QUARANTINED = "quarantined"  # unmatched past its tries: in payments_quarantined_events


STRIPE_SHAPED = frozenset({"stripe", "simulated"})  # Razorpay's own shape is not applied yet


PAYMENT_TYPES = {
    "payment_intent.succeeded": PaymentStatus.SUCCEEDED,
    "payment_intent.payment_failed": PaymentStatus.FAILED,
    "payment_intent.processing": PaymentStatus.PENDING,
    "payment_intent.requires_action": PaymentStatus.REQUIRES_ACTION,
    "charge.succeeded": PaymentStatus.SUCCEEDED,
    "charge.failed": PaymentStatus.FAILED,
}


REFUND_TYPES = frozenset(
    {"charge.refunded", "refund.created", "refund.updated", "charge.refund.updated"}
)


DISPUTE_TYPES = {
    "charge.dispute.created": "needs_response",
    "charge.dispute.updated": None,  # the object's own status
    "charge.dispute.closed": None,
    "charge.dispute.funds_withdrawn": None,
    "charge.dispute.funds_reinstated": None,
}


DISPUTE_CLOSED = frozenset({"won", "lost", "warning_closed"})


DISPUTE_STATUSES = DISPUTE_CLOSED | {
    "warning_needs_response",
    "warning_under_review",
    "needs_response",
    "under_review",
}


MAX_EPOCH = 253_402_300_800  # 10000-01-01: later epoch seconds are not a datetime


class MalformedEvent(ValidationError):
    """The event payload is not a usable Stripe-shaped event; the message says which field."""


@dataclass(frozen=True)
class IncomingEvent:
    """One landed event: which gateway sent it, its id and type, and the raw body."""

    source: str
    event_id: str
    event_type: str
    body: str
    received_at: datetime
    signature_verified: bool = True


# -- parsing ---------------------------------------------------------------------------------
def parse_event(ev: IncomingEvent) -> tuple[dict[str, Any], Mapping[str, Any], datetime]:
    try:
        payload = json.loads(ev.body)
    except ValueError as e:
        raise MalformedEvent(f"body is not JSON: {e}") from None
    if not isinstance(payload, dict):
        raise MalformedEvent("body is not a JSON object")
    if payload.get("id") != ev.event_id:
        raise MalformedEvent(f"body id {payload.get('id')!r} differs from event id {ev.event_id}")
    if payload.get("type") != ev.event_type:
        raise MalformedEvent(f"body type {payload.get('type')!r} differs from {ev.event_type}")
    data = payload.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        raise MalformedEvent("data.object is missing or not an object")
    created = payload.get("created")
    if created is None:
        at = ev.received_at
    elif isinstance(created, int) and not isinstance(created, bool) and 0 < created < MAX_EPOCH:
        at = datetime.fromtimestamp(created, UTC)
    else:
        raise MalformedEvent(f"created must be epoch seconds, got {created!r}")
    return payload, obj, at


def text_field(obj: Mapping[str, Any], key: str, required: bool = True) -> str | None:
    value = obj.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > 255:
        raise MalformedEvent(f"{key} must be a non-empty string, got {value!r}")
    return value


def minor_field(obj: Mapping[str, Any], key: str, required: bool = True) -> int | None:
    value = obj.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedEvent(f"{key} must be a non-negative integer of minor units, got {value!r}")
    return value


def currency_field(obj: Mapping[str, Any]) -> str | None:
    value = obj.get("currency")
    if value is None:
        return None
    if not isinstance(value, str) or len(value) != 3 or not value.isalpha():
        raise MalformedEvent(f"currency must be a 3-letter code, got {value!r}")
    return value.upper()


def payment_id_of(obj: Mapping[str, Any]) -> str:
    """The gateway payment id the ledger stores (a PaymentIntent id when there is one)."""
    if obj.get("object") == "payment_intent":
        return str(text_field(obj, "id"))
    pid = text_field(obj, "payment_intent", required=False) or text_field(
        obj, "charge", required=False
    )
    if pid is None and obj.get("object") == "charge":
        pid = text_field(obj, "id")
    if pid is None:
        raise MalformedEvent("the object names no payment_intent or charge")
    return pid
