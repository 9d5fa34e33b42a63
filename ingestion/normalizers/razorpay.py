"""Razorpay API objects -> raw rows (stable columns, `*_minor` money, upper ISO currency, extra JSON).

Razorpay amounts are already in paise (minor units). Settlements carry no currency field:
Razorpay settles to Indian bank accounts in INR only, so INR is the documented default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ingestion.normalizers.common import (
    PAYMENT_COLUMNS,
    NormalizationError,
    Reader,
    vpa_handle,
)

Row = dict[str, Any]
SETTLEMENT_CURRENCY = "INR"


def payment(obj: Mapping[str, Any]) -> Row:
    r = Reader("razorpay payment", obj)
    card = obj.get("card") if isinstance(obj.get("card"), Mapping) else {}
    # Older payloads call the GST on the fee `service_tax`; both mean the same money.
    fee_tax = r.minor("tax")
    if fee_tax is None:
        fee_tax = r.minor("service_tax")
    r.used.add("service_tax")
    row: Row = {
        "gateway": "razorpay",
        "object_type": "payment",
        "gateway_payment_id": r.id(),
        "created_at": r.timestamp("created_at", required=True),
        "status": r.text("status"),
        "amount_minor": r.minor("amount", required=True),
        "amount_refunded_minor": r.minor("amount_refunded"),
        "currency": r.currency(),
        "captured": r.flag("captured"),
        "customer_id": r.text("customer_id"),
        "invoice_id": r.text("invoice_id"),
        "order_id": r.text("order_id"),
        "payment_intent_id": None,
        "payment_method_id": r.text("token_id") or r.text("card_id"),
        "method": r.text("method"),
        "card_network": card.get("network"),
        "card_funding": card.get("type"),
        "card_issuer": card.get("issuer"),
        "card_country": card.get("country"),
        "bank": r.text("bank"),
        "wallet": r.text("wallet"),
        "vpa_handle": vpa_handle(obj.get("vpa")),
        "decline_code": r.text("error_code"),
        "failure_message": r.text("error_description"),
        "fee_minor": r.minor("fee"),
        "fee_tax_minor": fee_tax,
        "balance_transaction_id": None,
        "settlement_id": r.text("settlement_id"),
    }
    # The full VPA identifies a person; the handle (the PSP) is what analytics needs.
    row["extra"] = r.extra(drop={"vpa"})
    return {c: row[c] for c in PAYMENT_COLUMNS}


def refund(obj: Mapping[str, Any]) -> Row:
    r = Reader("razorpay refund", obj)
    row: Row = {
        "id": r.id(),
        "gateway": "razorpay",
        "created_at": r.timestamp("created_at", required=True),
        "status": r.text("status"),
        "amount_minor": r.minor("amount", required=True),
        "currency": r.currency(),
        "payment_id": r.text("payment_id"),
        "speed_processed": r.text("speed_processed"),
        "speed_requested": r.text("speed_requested"),
        "receipt": r.text("receipt"),
        "batch_id": r.text("batch_id"),
        "arn": r.nested("acquirer_data", "arn"),
    }
    row["extra"] = r.extra()
    return row


def settlement(obj: Mapping[str, Any]) -> Row:
    r = Reader("razorpay settlement", obj)
    row: Row = {
        "id": r.id(),
        "gateway": "razorpay",
        "created_at": r.timestamp("created_at", required=True),
        "status": r.text("status"),
        "amount_minor": r.minor("amount", required=True),  # net credited to the bank
        "fee_minor": r.minor("fees"),
        "tax_minor": r.minor("tax"),
        "currency": r.currency(default=SETTLEMENT_CURRENCY),
        "utr": r.text("utr"),
    }
    row["extra"] = r.extra()
    return row


def settlement_ondemand(obj: Mapping[str, Any]) -> Row:
    r = Reader("razorpay settlement.ondemand", obj)
    row: Row = {
        "id": r.id(),
        "created_at": r.timestamp("created_at", required=True),
        "status": r.text("status"),
        "amount_requested_minor": r.minor("amount_requested", required=True),
        "amount_settled_minor": r.minor("amount_settled"),
        "amount_pending_minor": r.minor("amount_pending"),
        "amount_reversed_minor": r.minor("amount_reversed"),
        "fee_minor": r.minor("fees"),
        "tax_minor": r.minor("tax"),
        "currency": r.currency(default=SETTLEMENT_CURRENCY),
        "settle_full_balance": r.flag("settle_full_balance"),
    }
    row["extra"] = r.extra()
    return row


def settlement_recon(obj: Mapping[str, Any]) -> Row:
    """One line of the settlement recon report (`/settlements/recon/combined`)."""
    r = Reader("razorpay settlement recon", obj)
    r.object_id = obj.get("entity_id")
    row: Row = {
        "entity_id": r.id("entity_id"),
        "type": r.text("type"),
        "settlement_id": r.text("settlement_id"),
        "settlement_utr": r.text("settlement_utr"),
        "payment_id": r.text("payment_id"),
        "order_id": r.text("order_id"),
        "dispute_id": r.text("dispute_id"),
        "amount_minor": r.minor("amount", required=True),
        "debit_minor": r.minor("debit"),
        "credit_minor": r.minor("credit"),
        "fee_minor": r.minor("fee"),
        "tax_minor": r.minor("tax"),
        "currency": r.currency(default=SETTLEMENT_CURRENCY),
        "on_hold": r.flag("on_hold"),
        "settled": r.flag("settled"),
        "created_at": r.timestamp("created_at", required=True),
        "settled_at": r.timestamp("settled_at"),
        "method": r.text("method"),
        "card_network": r.text("card_network"),
        "card_issuer": r.text("card_issuer"),
        "card_type": r.text("card_type"),
    }
    row["extra"] = r.extra()
    return row


def dispute(obj: Mapping[str, Any]) -> Row:
    r = Reader("razorpay dispute", obj)
    row: Row = {
        "id": r.id(),
        "gateway": "razorpay",
        "created_at": r.timestamp("created_at", required=True),
        "status": r.text("status"),
        "amount_minor": r.minor("amount", required=True),
        "amount_deducted_minor": r.minor("amount_deducted"),
        "currency": r.currency(),
        "payment_id": r.text("payment_id"),
        "reason": r.text("reason_code"),
        "phase": r.text("phase"),
        "respond_by": r.timestamp("respond_by"),
    }
    row["extra"] = r.extra()
    return row


def order(obj: Mapping[str, Any]) -> Row:
    r = Reader("razorpay order", obj)
    row: Row = {
        "id": r.id(),
        "created_at": r.timestamp("created_at", required=True),
        "status": r.text("status"),
        "amount_minor": r.minor("amount", required=True),
        "amount_paid_minor": r.minor("amount_paid"),
        "amount_due_minor": r.minor("amount_due"),
        "currency": r.currency(),
        "receipt": r.text("receipt"),
        "attempts": r.integer("attempts"),
    }
    row["extra"] = r.extra()
    return row


def customer(obj: Mapping[str, Any]) -> Row:
    r = Reader("razorpay customer", obj)
    row: Row = {
        "id": r.id(),
        "created_at": r.timestamp("created_at"),
        "gstin": r.text("gstin"),
    }
    row["extra"] = r.extra()
    return row


def invoice(obj: Mapping[str, Any]) -> Row:
    r = Reader("razorpay invoice", obj)
    row: Row = {
        "id": r.id(),
        "created_at": r.timestamp("created_at", required=True),
        "issued_at": r.timestamp("issued_at"),
        "paid_at": r.timestamp("paid_at"),
        "status": r.text("status"),
        "type": r.text("type"),
        "customer_id": r.text("customer_id"),
        "order_id": r.text("order_id"),
        "payment_id": r.text("payment_id"),
        "subscription_id": r.text("subscription_id"),
        "amount_minor": r.minor("amount"),
        "amount_paid_minor": r.minor("amount_paid"),
        "amount_due_minor": r.minor("amount_due"),
        "tax_minor": r.minor("tax_amount"),
        "currency": r.currency(),
    }
    row["extra"] = r.extra()
    return row


def subscription(obj: Mapping[str, Any]) -> Row:
    r = Reader("razorpay subscription", obj)
    row: Row = {
        "id": r.id(),
        "created_at": r.timestamp("created_at", required=True),
        "status": r.text("status"),
        "customer_id": r.text("customer_id"),
        "plan_id": r.text("plan_id"),
        "quantity": r.integer("quantity"),
        "total_count": r.integer("total_count"),
        "paid_count": r.integer("paid_count"),
        "current_start": r.timestamp("current_start"),
        "current_end": r.timestamp("current_end"),
        "start_at": r.timestamp("start_at"),
        "end_at": r.timestamp("end_at"),
        "ended_at": r.timestamp("ended_at"),
        "charge_at": r.timestamp("charge_at"),
        "auth_attempts": r.integer("auth_attempts"),
    }
    row["extra"] = r.extra()
    return row


def event(obj: Mapping[str, Any]) -> Row:
    """A webhook event envelope; the entity ids it carries become columns."""
    r = Reader("razorpay event", obj)
    payload = obj.get("payload") if isinstance(obj.get("payload"), Mapping) else {}

    def entity_id(name: str) -> str | None:
        wrapped = payload.get(name)
        entity = wrapped.get("entity") if isinstance(wrapped, Mapping) else None
        return entity.get("id") if isinstance(entity, Mapping) else None

    event_type = r.text("event")
    if not event_type:
        raise r.fail("event", "an event type is required")
    row: Row = {
        "id": obj.get("id"),
        "event": event_type,
        "account_id": r.text("account_id"),
        "created_at": r.timestamp("created_at", required=True),
        "contains": ",".join(c for c in obj.get("contains") or [] if isinstance(c, str)),
        "payment_id": entity_id("payment"),
        "refund_id": entity_id("refund"),
        "order_id": entity_id("order"),
        "subscription_id": entity_id("subscription"),
        "settlement_id": entity_id("settlement"),
    }
    r.used.add("id")
    row["extra"] = r.extra()
    return row


def generic(obj: Mapping[str, Any]) -> Row:
    """Entities without a dedicated table (plans, items, transfers...): id, type, time, extra."""
    kind = obj.get("entity")
    r = Reader(f"razorpay {kind}", obj)
    row: Row = {
        "id": r.id(),
        "entity": r.text("entity"),
        "created_at": r.timestamp("created_at"),
        "amount_minor": r.minor("amount"),
        "currency": r.currency(),
    }
    row["extra"] = r.extra()
    return row


NORMALIZERS: dict[str, Callable[[Mapping[str, Any]], Row]] = {
    "payment": payment,
    "refund": refund,
    "settlement": settlement,
    "settlement.ondemand": settlement_ondemand,
    "settlement.recon": settlement_recon,
    "dispute": dispute,
    "order": order,
    "customer": customer,
    "invoice": invoice,
    "subscription": subscription,
    "event": event,
}


def normalize_razorpay(obj: Mapping[str, Any]) -> tuple[str, Row]:
    """Normalize a Razorpay entity; return (entity, row). Recon lines have no `entity` field."""
    if not isinstance(obj, Mapping):
        raise NormalizationError("razorpay object", None, "<object>", f"not an object: {obj!r}")
    kind = obj.get("entity")
    if kind is None and "entity_id" in obj and "settlement_id" in obj:
        kind = "settlement.recon"
    if not isinstance(kind, str) or kind == "collection":
        raise NormalizationError(
            "razorpay object",
            obj.get("id"),
            "entity",
            f"expected a single entity (payment, refund, ...), got {kind!r}",
        )
    return kind, NORMALIZERS.get(kind, generic)(obj)
