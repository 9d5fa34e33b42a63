"""Turning Stripe-shaped charge objects into rows of ``raw.gateway_charges``."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime

import pandas as pd

from billing_jobs.money import normalize_currency

RAW_CHARGE_COLUMNS = [
    "charge_id",
    "gateway",
    "customer_id",
    "invoice_id",
    "amount_minor",
    "currency",
    "status",
    "method",
    "issuer",
    "decline_code",
    "attempt_number",
    "fee_minor",
    "fee_tax_minor",
    "balance_transaction_id",
    "settlement_id",
    "created_at",
    "settled_at",
    "raw_json",
]


class ChargeNormalizationError(ValueError):
    """A gateway charge object is missing or has an invalid field."""


def _issuer(details: dict) -> str | None:
    method = details.get("type")
    sub = details.get(method) or {}
    return sub.get("issuer") or sub.get("bank") or sub.get("vpa_handle") or sub.get("type")


def charge_to_row(charge: dict, gateway: str) -> dict:
    """One raw row per charge attempt. Money stays integer minor units."""
    cid = charge.get("id")
    if not cid or not isinstance(cid, str):
        raise ChargeNormalizationError("charge has no string 'id'")
    amount = charge.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise ChargeNormalizationError(f"charge {cid}: 'amount' must be a non-negative integer")
    created = charge.get("created")
    if isinstance(created, bool) or not isinstance(created, int):
        raise ChargeNormalizationError(f"charge {cid}: 'created' must be a unix timestamp")
    meta = charge.get("metadata") or {}
    details = charge.get("payment_method_details") or {}
    settled = meta.get("settled_at")
    return {
        "charge_id": cid,
        "gateway": gateway,
        "customer_id": charge.get("customer"),
        "invoice_id": charge.get("invoice"),
        "amount_minor": amount,
        "currency": normalize_currency(str(charge.get("currency", ""))),
        "status": charge.get("status"),
        "method": details.get("type"),
        "issuer": _issuer(details),
        "decline_code": charge.get("failure_code"),
        "attempt_number": int(meta.get("attempt_number", 1)),
        "fee_minor": int(meta.get("fee_minor", 0)),
        "fee_tax_minor": int(meta.get("fee_tax_minor", 0)),
        "balance_transaction_id": charge.get("balance_transaction"),
        "settlement_id": meta.get("settlement_id"),
        "created_at": datetime.fromtimestamp(created, UTC).replace(tzinfo=None),
        "settled_at": (
            datetime.fromisoformat(settled).astimezone(UTC).replace(tzinfo=None)
            if settled
            else None
        ),
        "raw_json": json.dumps(charge, sort_keys=True),
    }


def charges_frame(charges: Iterable[dict], gateway: str) -> pd.DataFrame:
    """A typed frame of raw charge rows (UTC-naive timestamps, int64 money)."""
    rows = [charge_to_row(c, gateway) for c in charges]
    df = pd.DataFrame(rows, columns=RAW_CHARGE_COLUMNS)
    for col in ("amount_minor", "fee_minor", "fee_tax_minor", "attempt_number"):
        df[col] = df[col].astype("int64")
    for col in ("created_at", "settled_at"):
        df[col] = pd.to_datetime(df[col]).astype("datetime64[us]")
    return df
