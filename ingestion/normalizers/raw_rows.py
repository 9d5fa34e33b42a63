"""Gateway objects -> rows of the raw warehouse contract (``raw.gateway_charges``,
``raw.gateway_customers``, ``raw.gateway_events``), built on the one normalizer per object.

A Stripe payment is a PaymentIntent whose latest charge (expanded) says how it was paid: method,
issuer or bank or UPI handle, card brand and country, the issuer's decline, and through its
balance transaction (expanded) the fee and the GST on it. A Razorpay payment carries all of that
itself. `raw_json` keeps the object whole (minus card secrets, full VPAs and client secrets).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ingestion.normalizers import razorpay as rzp
from ingestion.normalizers import stripe as stp
from ingestion.normalizers.common import NormalizationError, Reader, scrub

Row = dict[str, Any]

RAW_CHARGE_COLUMNS = (
    "charge_id", "gateway", "customer_id", "gateway_customer_id", "gateway_charge_id",
    "invoice_id", "amount_minor", "currency", "status", "method", "issuer", "card_brand",
    "card_country", "decline_code", "attempt_number", "fee_minor", "fee_tax_minor",
    "balance_transaction_id", "settlement_id", "created_at", "settled_at", "raw_json",
)  # fmt: skip
RAW_CUSTOMER_COLUMNS = (
    "id", "gateway", "created_at", "paysight_customer_id", "currency", "country",
    "delinquent", "raw_json",
)  # fmt: skip
RAW_EVENT_COLUMNS = (
    "id", "gateway", "type", "created_at", "object_id", "object_type", "api_version", "raw_json",
)  # fmt: skip

# Stripe's wallet payment method types; cards paid through Apple/Google Pay stay cards.
STRIPE_WALLETS = frozenset(
    {"amazon_pay", "paypal", "link", "cashapp", "alipay", "wechat_pay", "grabpay", "mobilepay"}
)
RAZORPAY_METHODS = {"card": "card", "upi": "upi", "netbanking": "netbanking", "wallet": "wallet",
                    "emi": "card", "cardless_emi": "wallet", "paylater": "wallet"}  # fmt: skip
# PaymentIntent status -> raw status; requires_payment_method is failed only after an error.
STRIPE_STATUS = {"succeeded": "succeeded", "processing": "pending", "requires_capture": "pending",
                 "requires_confirmation": "failed", "requires_action": "failed",
                 "canceled": "failed"}  # fmt: skip
RAZORPAY_STATUS = {"captured": "succeeded", "refunded": "succeeded", "failed": "failed",
                   "created": "pending", "authorized": "pending"}  # fmt: skip


def _naive(ts: datetime | None) -> datetime | None:
    """UTC-naive, as the raw tables store timestamps."""
    return ts.astimezone(UTC).replace(tzinfo=None) if ts is not None else None


def _whole(obj: Mapping[str, Any], drop: frozenset[str] = frozenset()) -> str:
    kept = {k: v for k, v in obj.items() if k not in drop}
    return json.dumps(scrub(kept), sort_keys=True, separators=(",", ":"), default=str)


def _metadata(r: Reader, field: str) -> dict[str, str]:
    meta = r.obj.get(field)
    if meta in (None, []):  # Razorpay sends [] for empty notes
        return {}
    if not isinstance(meta, Mapping):
        raise r.fail(field, f"expected an object of key/value pairs, got {type(meta).__name__}")
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}


def _attempt(r: Reader, meta: Mapping[str, str], field: str) -> int:
    value = meta.get("attempt_number", "1")
    if not value.isdigit() or int(value) < 1:
        raise r.fail(f"{field}.attempt_number", f"expected a positive integer, got {value!r}")
    return int(value)


def _latest_charge(r: Reader) -> Mapping[str, Any] | None:
    """The expanded latest charge; older API versions (and localstripe) list `charges.data`."""
    latest = r.obj.get("latest_charge")
    if isinstance(latest, Mapping):
        return latest
    charges = r.nested("charges", "data")
    if isinstance(charges, list) and charges:
        if latest is not None:
            for c in charges:
                if isinstance(c, Mapping) and c.get("id") == latest:
                    return c
        newest = max(
            (c for c in charges if isinstance(c, Mapping)),
            key=lambda c: c.get("created") if isinstance(c.get("created"), int) else 0,
            default=None,
        )
        return newest
    return None


def stripe_method(kind: object) -> str | None:
    if not isinstance(kind, str):
        return None
    return "wallet" if kind in STRIPE_WALLETS else kind


def stripe_payment(obj: Mapping[str, Any]) -> Row:
    """A PaymentIntent (with `latest_charge` expanded) -> one row of raw.gateway_charges."""
    intent = stp.payment_intent(obj)
    r = Reader("stripe payment_intent", obj)
    meta = _metadata(r, "metadata")
    latest = _latest_charge(r)
    charge = stp.charge(latest) if latest is not None else None
    if charge is not None and charge["payment_intent_id"] not in (None, intent["id"]):
        raise r.fail(
            "latest_charge.payment_intent",
            f"charge {charge['gateway_payment_id']} belongs to {charge['payment_intent_id']}",
        )
    ch = charge or {}
    method = stripe_method(ch.get("method"))
    raw_status = intent["status"]
    if raw_status == "requires_payment_method":
        attempted = intent["last_error_code"] or intent["last_error_type"] or ch.get("decline_code")
        status = "failed" if attempted else "pending"
    elif raw_status in STRIPE_STATUS:
        status = STRIPE_STATUS[raw_status]
    else:
        raise r.fail("status", f"unknown PaymentIntent status {raw_status!r}")
    decline = None
    if status == "failed":
        decline = (
            intent["decline_code"]
            or ch.get("decline_code")
            or intent["last_error_code"]
            or ("authentication_required" if raw_status == "requires_action" else None)
        )
    return {
        "charge_id": intent["id"],
        "gateway": "stripe",
        "customer_id": meta.get("paysight_customer_id")
        or meta.get("customer_id")
        or intent["customer_id"],
        "gateway_customer_id": intent["customer_id"] or ch.get("customer_id"),
        "gateway_charge_id": ch.get("gateway_payment_id") or intent["latest_charge_id"],
        "invoice_id": meta.get("invoice_id") or intent["invoice_id"],
        "amount_minor": intent["amount_minor"],
        "currency": intent["currency"],
        "status": status,
        "method": method,
        # Card issuer, bank, UPI handle (the PSP), or for a wallet payment the wallet itself.
        "issuer": ch.get("card_issuer")
        or ch.get("bank")
        or ch.get("vpa_handle")
        or ch.get("wallet")
        or (ch.get("method") if method == "wallet" else None),
        "card_brand": ch.get("card_network"),
        "card_country": ch.get("card_country"),
        "decline_code": decline,
        "attempt_number": _attempt(r, meta, "metadata"),
        "fee_minor": ch.get("fee_minor") or 0,
        "fee_tax_minor": ch.get("fee_tax_minor") or 0,
        "balance_transaction_id": ch.get("balance_transaction_id"),
        "settlement_id": None,
        "created_at": _naive(intent["created_at"]),
        "settled_at": None,
        "raw_json": _whole(obj, frozenset({"client_secret"})),
    }


def razorpay_payment(obj: Mapping[str, Any]) -> Row:
    """A Razorpay payment entity -> one row of raw.gateway_charges (fee net of its GST)."""
    p = rzp.payment(obj)
    r = Reader("razorpay payment", obj)
    notes = _metadata(r, "notes")
    status = RAZORPAY_STATUS.get(p["status"])
    if status is None:
        raise r.fail("status", f"unknown payment status {p['status']!r}")
    fee, tax = p["fee_minor"] or 0, p["fee_tax_minor"] or 0
    if tax > fee:
        raise r.fail("tax", f"GST on the fee ({tax}) exceeds the fee ({fee}) it is part of")
    reason = obj.get("error_reason")
    return {
        "charge_id": p["gateway_payment_id"],
        "gateway": "razorpay",
        "customer_id": notes.get("paysight_customer_id")
        or notes.get("customer_id")
        or p["customer_id"],
        "gateway_customer_id": p["customer_id"],
        "gateway_charge_id": p["gateway_payment_id"],
        "invoice_id": notes.get("invoice_id") or p["invoice_id"],
        "amount_minor": p["amount_minor"],
        "currency": p["currency"] or "INR",
        "status": status,
        "method": RAZORPAY_METHODS.get(p["method"] or "", p["method"]),
        "issuer": p["card_issuer"] or p["bank"] or p["wallet"] or p["vpa_handle"],
        "card_brand": p["card_network"],
        "card_country": p["card_country"],
        "decline_code": ((reason if isinstance(reason, str) else None) or p["decline_code"])
        if status == "failed"
        else None,
        "attempt_number": _attempt(r, notes, "notes"),
        "fee_minor": fee - tax,
        "fee_tax_minor": tax,
        "balance_transaction_id": None,
        "settlement_id": p["settlement_id"],
        "created_at": _naive(p["created_at"]),
        "settled_at": None,
        "raw_json": _whole(obj, frozenset({"vpa"})),
    }


def stripe_customer(obj: Mapping[str, Any]) -> Row:
    c = stp.customer(obj)
    r = Reader("stripe customer", obj)
    meta = _metadata(r, "metadata")
    return {
        "id": c["id"],
        "gateway": "stripe",
        "created_at": _naive(c["created_at"]),
        "paysight_customer_id": meta.get("paysight_customer_id") or meta.get("customer_id"),
        "currency": c["currency"],
        "country": c["country"],
        "delinquent": c["delinquent"],
        "raw_json": _whole(obj),
    }


def razorpay_customer(obj: Mapping[str, Any]) -> Row:
    c = rzp.customer(obj)
    r = Reader("razorpay customer", obj)
    notes = _metadata(r, "notes")
    if c["created_at"] is None:
        raise r.fail("created_at", "timestamp is required")
    return {
        "id": c["id"],
        "gateway": "razorpay",
        "created_at": _naive(c["created_at"]),
        "paysight_customer_id": notes.get("paysight_customer_id") or notes.get("customer_id"),
        "currency": None,
        "country": "IN" if c["gstin"] else None,
        "delinquent": None,
        "raw_json": _whole(obj),
    }


def stripe_event(obj: Mapping[str, Any]) -> Row:
    e = stp.event(obj)
    return {
        "id": e["id"],
        "gateway": "stripe",
        "type": e["type"],
        "created_at": _naive(e["created_at"]),
        "object_id": e["object_id"] if isinstance(e["object_id"], str) else None,
        "object_type": e["object_type"] if isinstance(e["object_type"], str) else None,
        "api_version": e["api_version"],
        "raw_json": _whole(obj),
    }


# (gateway, listing) -> (raw table, key, columns, normalizer)
RAW_LISTINGS = {
    ("stripe", "payments"): ("gateway_charges", "charge_id", RAW_CHARGE_COLUMNS, stripe_payment),
    ("stripe", "customers"): ("gateway_customers", "id", RAW_CUSTOMER_COLUMNS, stripe_customer),
    ("stripe", "events"): ("gateway_events", "id", RAW_EVENT_COLUMNS, stripe_event),
    ("razorpay", "payments"): (
        "gateway_charges", "charge_id", RAW_CHARGE_COLUMNS, razorpay_payment,
    ),
    ("razorpay", "customers"): (
        "gateway_customers", "id", RAW_CUSTOMER_COLUMNS, razorpay_customer,
    ),
}  # fmt: skip

__all__ = [
    "RAW_CHARGE_COLUMNS",
    "RAW_CUSTOMER_COLUMNS",
    "RAW_EVENT_COLUMNS",
    "RAW_LISTINGS",
    "NormalizationError",
    "razorpay_customer",
    "razorpay_payment",
    "stripe_customer",
    "stripe_event",
    "stripe_payment",
]
