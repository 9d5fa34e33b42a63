"""Stripe API objects -> raw rows (stable columns, `*_minor` money, upper ISO currency, extra JSON)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from ingestion.normalizers.common import (
    PAYMENT_COLUMNS,
    NormalizationError,
    Reader,
    nested_minor,
    vpa_handle,
)

Row = dict[str, Any]


def _fee_parts(r: Reader, field: str, bt: Any) -> tuple[int | None, int | None]:
    """Fee and GST-on-fee from an expanded balance transaction (`fee_details` type "tax")."""
    if not isinstance(bt, Mapping):
        return None, None
    fee = nested_minor(r, f"{field}.fee", bt.get("fee"))
    tax = None
    for detail in bt.get("fee_details") or []:
        if isinstance(detail, Mapping) and detail.get("type") == "tax":
            tax = (tax or 0) + (
                nested_minor(r, f"{field}.fee_details.amount", detail.get("amount")) or 0
            )
    return fee, tax


def charge(obj: Mapping[str, Any]) -> Row:
    r = Reader("stripe charge", obj)
    details = r.nested("payment_method_details") or {}
    method = details.get("type") if isinstance(details, Mapping) else None
    sub = details.get(method) if isinstance(details, Mapping) and method else None
    sub = sub if isinstance(sub, Mapping) else {}
    wallet = sub.get("wallet")
    fee, fee_tax = _fee_parts(r, "balance_transaction", obj.get("balance_transaction"))
    # failure_code is generic ("card_declined"); the outcome reason names the issuer's decline.
    failure_code = obj.get("failure_code")
    reason = r.nested("outcome", "reason")
    decline = (
        reason if failure_code == "card_declined" and isinstance(reason, str) else failure_code
    )
    row: Row = {
        "gateway": "stripe",
        "object_type": "charge",
        "gateway_payment_id": r.id(),
        "created_at": r.timestamp("created", required=True),
        "status": r.text("status"),
        "amount_minor": r.minor("amount", required=True),
        "amount_refunded_minor": r.minor("amount_refunded"),
        "currency": r.currency(),
        "captured": r.flag("captured"),
        "customer_id": r.text("customer"),
        "invoice_id": r.text("invoice"),
        "order_id": None,
        "payment_intent_id": r.text("payment_intent"),
        "payment_method_id": r.text("payment_method"),
        "method": method,
        "card_network": sub.get("network") or sub.get("brand"),
        "card_funding": sub.get("funding"),
        "card_issuer": sub.get("issuer"),
        "card_country": sub.get("country"),
        # Indian methods on Stripe: netbanking names the bank, UPI carries the VPA.
        "bank": sub.get("bank"),
        "wallet": wallet.get("type") if isinstance(wallet, Mapping) else wallet,
        "vpa_handle": vpa_handle(sub.get("vpa")),
        "decline_code": decline,
        "failure_message": r.text("failure_message"),
        "fee_minor": fee,
        "fee_tax_minor": fee_tax,
        "balance_transaction_id": r.text("balance_transaction"),
        "settlement_id": None,
    }
    row["extra"] = r.extra()
    return {c: row[c] for c in PAYMENT_COLUMNS}


def payment_intent(obj: Mapping[str, Any]) -> Row:
    r = Reader("stripe payment_intent", obj)
    error = r.nested("last_payment_error") or {}
    error = error if isinstance(error, Mapping) else {}
    row: Row = {
        "id": r.id(),
        "created_at": r.timestamp("created", required=True),
        "status": r.text("status"),
        "amount_minor": r.minor("amount", required=True),
        "amount_received_minor": r.minor("amount_received"),
        "amount_capturable_minor": r.minor("amount_capturable"),
        "currency": r.currency(),
        "customer_id": r.text("customer"),
        "invoice_id": r.text("invoice"),
        "latest_charge_id": r.text("latest_charge"),
        "payment_method_id": r.text("payment_method"),
        "payment_method_types": json.dumps(obj.get("payment_method_types") or []),
        "capture_method": r.text("capture_method"),
        "canceled_at": r.timestamp("canceled_at"),
        "cancellation_reason": r.text("cancellation_reason"),
        "last_error_type": error.get("type"),
        "last_error_code": error.get("code"),
        "decline_code": error.get("decline_code"),
        "livemode": r.flag("livemode"),
    }
    # client_secret lets a browser confirm the payment: never land it.
    row["extra"] = r.extra(drop={"client_secret"})
    return row


def refund(obj: Mapping[str, Any]) -> Row:
    r = Reader("stripe refund", obj)
    row: Row = {
        "id": r.id(),
        "gateway": "stripe",
        "created_at": r.timestamp("created", required=True),
        "status": r.text("status"),
        "amount_minor": r.minor("amount", required=True),
        "currency": r.currency(),
        "payment_id": r.text("charge"),
        "payment_intent_id": r.text("payment_intent"),
        "reason": r.text("reason"),
        "balance_transaction_id": r.text("balance_transaction"),
    }
    row["extra"] = r.extra()
    return row


def dispute(obj: Mapping[str, Any]) -> Row:
    r = Reader("stripe dispute", obj)
    row: Row = {
        "id": r.id(),
        "gateway": "stripe",
        "created_at": r.timestamp("created", required=True),
        "status": r.text("status"),
        "amount_minor": r.minor("amount", required=True),
        "currency": r.currency(),
        "payment_id": r.text("charge"),
        "payment_intent_id": r.text("payment_intent"),
        "reason": r.text("reason"),
        "network_reason_code": r.nested("payment_method_details", "card", "network_reason_code"),
        "evidence_due_by": r.nested("evidence_details", "due_by"),
    }
    row["extra"] = r.extra()
    return row


def balance_transaction(obj: Mapping[str, Any]) -> Row:
    r = Reader("stripe balance_transaction", obj)
    fee_tax = None
    for detail in obj.get("fee_details") or []:
        if isinstance(detail, Mapping) and detail.get("type") == "tax":
            amount = nested_minor(r, "fee_details.amount", detail.get("amount")) or 0
            fee_tax = (fee_tax or 0) + amount
    rate = obj.get("exchange_rate")
    row: Row = {
        "id": r.id(),
        "created_at": r.timestamp("created", required=True),
        "available_on": r.timestamp("available_on"),
        "type": r.text("type"),
        "reporting_category": r.text("reporting_category"),
        "status": r.text("status"),
        "source_id": r.text("source"),
        "amount_minor": r.minor("amount", required=True),
        "fee_minor": r.minor("fee"),
        "fee_tax_minor": fee_tax,
        "net_minor": r.minor("net"),
        "currency": r.currency(),
        # Kept as text: a float would lose digits of the rate.
        "exchange_rate": None if rate is None else str(rate),
    }
    r.used.add("exchange_rate")
    row["extra"] = r.extra()
    return row


def payout(obj: Mapping[str, Any]) -> Row:
    r = Reader("stripe payout", obj)
    row: Row = {
        "id": r.id(),
        "created_at": r.timestamp("created", required=True),
        "arrival_date": r.timestamp("arrival_date"),
        "status": r.text("status"),
        "amount_minor": r.minor("amount", required=True),
        "currency": r.currency(),
        "method": r.text("method"),
        "type": r.text("type"),
        "automatic": r.flag("automatic"),
        "balance_transaction_id": r.text("balance_transaction"),
        "destination_id": r.text("destination"),
        "failure_code": r.text("failure_code"),
        "reconciliation_status": r.text("reconciliation_status"),
        "trace_id": r.nested("trace_id", "value"),
    }
    row["extra"] = r.extra()
    return row


def event(obj: Mapping[str, Any]) -> Row:
    r = Reader("stripe event", obj)
    data_object = r.nested("data", "object")
    data_object = data_object if isinstance(data_object, Mapping) else {}
    row: Row = {
        "id": r.id(),
        "type": r.text("type"),
        "created_at": r.timestamp("created", required=True),
        "api_version": r.text("api_version"),
        "livemode": r.flag("livemode"),
        "pending_webhooks": r.integer("pending_webhooks"),
        "object_id": data_object.get("id"),
        "object_type": data_object.get("object"),
        "request_id": r.nested("request", "id"),
        "idempotency_key": r.nested("request", "idempotency_key"),
    }
    if not isinstance(row["type"], str):
        raise r.fail("type", "an event type is required")
    row["extra"] = r.extra()
    return row


def invoice(obj: Mapping[str, Any]) -> Row:
    r = Reader("stripe invoice", obj)
    tax = r.minor("tax")
    if tax is None and isinstance(obj.get("total_taxes"), list):
        tax = sum(
            nested_minor(r, "total_taxes.amount", t.get("amount")) or 0
            for t in obj["total_taxes"]
            if isinstance(t, Mapping)
        )
    subscription = obj.get("subscription") or r.nested(
        "parent", "subscription_details", "subscription"
    )
    row: Row = {
        "id": r.id(),
        "number": r.text("number"),
        "status": r.text("status"),
        "customer_id": r.text("customer"),
        "subscription_id": subscription if isinstance(subscription, str) else None,
        "currency": r.currency(),
        "created_at": r.timestamp("created", required=True),
        "period_start": r.timestamp("period_start"),
        "period_end": r.timestamp("period_end"),
        "due_date": r.timestamp("due_date"),
        "amount_due_minor": r.minor("amount_due"),
        "amount_paid_minor": r.minor("amount_paid"),
        "amount_remaining_minor": r.minor("amount_remaining"),
        "subtotal_minor": r.minor("subtotal"),
        "tax_minor": tax,
        "total_minor": r.minor("total"),
        "attempt_count": r.integer("attempt_count"),
        "billing_reason": r.text("billing_reason"),
        "collection_method": r.text("collection_method"),
    }
    r.used.add("subscription")
    row["extra"] = r.extra()
    return row


def subscription(obj: Mapping[str, Any]) -> Row:
    r = Reader("stripe subscription", obj)
    items = r.nested("items", "data") or []
    first = items[0] if items and isinstance(items[0], Mapping) else {}
    price = first.get("price") if isinstance(first.get("price"), Mapping) else {}
    recurring = price.get("recurring") if isinstance(price.get("recurring"), Mapping) else {}
    # Newer API versions moved the current period onto the items.
    period_start = obj.get("current_period_start", first.get("current_period_start"))
    period_end = obj.get("current_period_end", first.get("current_period_end"))
    row: Row = {
        "id": r.id(),
        "customer_id": r.text("customer"),
        "status": r.text("status"),
        "currency": r.currency(),
        "created_at": r.timestamp("created", required=True),
        "start_date": r.timestamp("start_date"),
        "current_period_start": _epoch(r, "current_period_start", period_start),
        "current_period_end": _epoch(r, "current_period_end", period_end),
        "trial_start": r.timestamp("trial_start"),
        "trial_end": r.timestamp("trial_end"),
        "cancel_at": r.timestamp("cancel_at"),
        "canceled_at": r.timestamp("canceled_at"),
        "ended_at": r.timestamp("ended_at"),
        "cancel_at_period_end": r.flag("cancel_at_period_end"),
        "collection_method": r.text("collection_method"),
        "item_count": len(items),
        "price_id": price.get("id"),
        "unit_amount_minor": nested_minor(r, "items.price.unit_amount", price.get("unit_amount")),
        "quantity": first.get("quantity"),
        "interval": recurring.get("interval"),
        "interval_count": recurring.get("interval_count"),
    }
    row["extra"] = r.extra()
    return row


def _epoch(r: Reader, field: str, value: object) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise r.fail(field, f"expected epoch seconds (integer), got {value!r}")
    return datetime.fromtimestamp(value, tz=UTC)


def customer(obj: Mapping[str, Any]) -> Row:
    r = Reader("stripe customer", obj)
    row: Row = {
        "id": r.id(),
        "created_at": r.timestamp("created", required=True),
        "currency": r.currency(),
        "balance_minor": r.minor("balance"),
        "delinquent": r.flag("delinquent"),
        "tax_exempt": r.text("tax_exempt"),
        "country": r.nested("address", "country"),
        "livemode": r.flag("livemode"),
    }
    row["extra"] = r.extra()
    return row


def payment_method(obj: Mapping[str, Any]) -> Row:
    r = Reader("stripe payment_method", obj)
    kind = obj.get("type")
    sub = obj.get(kind) if isinstance(kind, str) and isinstance(obj.get(kind), Mapping) else {}
    wallet = sub.get("wallet")
    row: Row = {
        "id": r.id(),
        "type": r.text("type"),
        "customer_id": r.text("customer"),
        "created_at": r.timestamp("created", required=True),
        "card_brand": sub.get("brand"),
        "card_network": (sub.get("networks") or {}).get("preferred") or sub.get("brand")
        if kind == "card"
        else None,
        "card_funding": sub.get("funding"),
        "card_country": sub.get("country"),
        "bank": sub.get("bank"),
        "wallet": wallet.get("type") if isinstance(wallet, Mapping) else None,
        "vpa_handle": vpa_handle(sub.get("vpa")),
    }
    row["extra"] = r.extra()
    return row


NORMALIZERS: dict[str, Callable[[Mapping[str, Any]], Row]] = {
    "charge": charge,
    "payment_intent": payment_intent,
    "refund": refund,
    "dispute": dispute,
    "balance_transaction": balance_transaction,
    "payout": payout,
    "event": event,
    "invoice": invoice,
    "subscription": subscription,
    "customer": customer,
    "payment_method": payment_method,
}


def normalize_stripe(obj: Mapping[str, Any]) -> tuple[str, Row]:
    """Normalize any supported Stripe object; return (object type, row)."""
    kind = obj.get("object") if isinstance(obj, Mapping) else None
    normalizer = NORMALIZERS.get(kind) if isinstance(kind, str) else None
    if normalizer is None:
        raise NormalizationError(
            "stripe object",
            obj.get("id") if isinstance(obj, Mapping) else None,
            "object",
            f"unsupported object type {kind!r}; supported: {sorted(NORMALIZERS)}",
        )
    return kind, normalizer(obj)
