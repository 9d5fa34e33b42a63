"""Payment-method rules: what may be stored (tokens, last4, brand, expiry — never PAN/CVV/UPI PIN),
which currencies and amounts each method allows (NPCI/RBI limits), expiring cards, refund bounds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from billing_jobs.money import normalize_currency


class PaymentMethodError(ValueError):
    """A payment method or a charge/refund on it broke a rule; the message names which."""


class UnknownPaymentMethod(PaymentMethodError):
    pass


class SensitiveDataRejected(PaymentMethodError):
    """Input carried a card number, CVV or PIN. Nothing was stored; the value is not echoed."""


class CurrencyNotAllowed(PaymentMethodError):
    pass


class AmountOverLimit(PaymentMethodError):
    pass


class RefundExceedsCaptured(PaymentMethodError):
    pass


class MethodKind(StrEnum):
    CARD = "card"
    UPI = "upi"
    NETBANKING = "netbanking"
    WALLET = "wallet"
    UPI_MANDATE = "upi_mandate"  # UPI AutoPay
    CARD_MANDATE = "card_mandate"  # RBI e-mandate on a card


INR_ONLY = frozenset(
    {MethodKind.UPI, MethodKind.NETBANKING, MethodKind.UPI_MANDATE, MethodKind.CARD_MANDATE}
)
MANDATES = frozenset({MethodKind.UPI_MANDATE, MethodKind.CARD_MANDATE})
# Per-transaction ceilings in paise: UPI P2M ₹1,00,000 (NPCI), wallets ₹2,00,000 (RBI PPI full-KYC
# balance cap), UPI AutoPay mandates ₹1,00,000 per debit.
LIMITS_MINOR: Mapping[MethodKind, int] = {
    MethodKind.UPI: 10_000_000,
    MethodKind.UPI_MANDATE: 10_000_000,
    MethodKind.WALLET: 20_000_000,
}
MANDATE_SILENT_LIMIT_MINOR = 1_500_000  # ₹15,000: above it each mandate debit needs authentication
VPA_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,255}@[A-Za-z][A-Za-z0-9.-]{1,63}$")
SENSITIVE_KEYS = frozenset(
    {
        "number",
        "card_number",
        "pan",
        "cvv",
        "cvc",
        "cvv2",
        "pin",
        "upi_pin",
        "mpin",
        "track",
        "track_data",
    }
)
ALLOWED_KEYS = frozenset(
    {"kind", "token", "customer_id", "brand", "last4", "exp_month", "exp_year", "issuer", "vpa", "bank",
     "wallet", "currency", "max_amount_minor"}
)  # fmt: skip
_DIGIT_RUN = re.compile(r"\d[\d -]{10,}\d")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def looks_like_pan(value: object) -> bool:
    """True when a value contains 13-19 digits (spaces/dashes allowed) passing the Luhn check."""
    if not isinstance(value, str | int) or isinstance(value, bool):
        return False
    for run in _DIGIT_RUN.findall(str(value)):
        digits = re.sub(r"[ -]", "", run)
        if 13 <= len(digits) <= 19 and _luhn_ok(digits):
            return True
    return False


@dataclass(frozen=True)
class StoredPaymentMethod:
    """Exactly what paysight keeps about an instrument."""

    kind: MethodKind
    token: str
    customer_id: str | None = None
    brand: str | None = None
    last4: str | None = None
    exp_month: int | None = None
    exp_year: int | None = None
    issuer: str | None = None
    vpa: str | None = None
    max_amount_minor: int | None = None  # a mandate's registered ceiling


def parse_kind(kind: object) -> MethodKind:
    try:
        return MethodKind(str(kind))
    except ValueError:
        raise UnknownPaymentMethod(
            f"unknown payment method {kind!r}; expected one of {[k.value for k in MethodKind]}"
        ) from None


def validate_payment_method(data: Mapping[str, Any], today: date) -> StoredPaymentMethod:
    """Validate input from an operator/CLI/API and reduce it to a storable record."""
    for key, value in data.items():
        if str(key).lower() in SENSITIVE_KEYS:
            raise SensitiveDataRejected(
                f"field {key!r} must never be sent to paysight; use a gateway token"
            )
        if looks_like_pan(value):
            raise SensitiveDataRejected(
                f"field {key!r} looks like a card number; send the gateway token instead"
            )
    unknown = set(data) - ALLOWED_KEYS
    if unknown:
        raise PaymentMethodError(f"unexpected fields {sorted(unknown)}")
    kind = parse_kind(data.get("kind"))
    token = data.get("token")
    if not isinstance(token, str) or not re.fullmatch(r"[A-Za-z0-9_/.:-]{3,128}", token):
        raise PaymentMethodError(
            "a gateway token (3-128 characters of A-Z a-z 0-9 _ / . : -) is required"
        )
    currency = data.get("currency")
    if currency is not None and kind in INR_ONLY and normalize_currency(str(currency)) != "INR":
        raise CurrencyNotAllowed(f"{kind.value} works only in INR, not {currency}")
    brand = last4 = vpa = None
    exp_month = exp_year = None
    if kind in (MethodKind.CARD, MethodKind.CARD_MANDATE):
        last4 = str(data.get("last4", ""))
        if not re.fullmatch(r"\d{4}", last4):
            raise PaymentMethodError(f"card last4 must be 4 digits, got {data.get('last4')!r}")
        try:
            exp_month, exp_year = int(data["exp_month"]), int(data["exp_year"])
        except (KeyError, TypeError, ValueError):
            raise PaymentMethodError("card exp_month and exp_year are required integers") from None
        if not 1 <= exp_month <= 12:
            raise PaymentMethodError(f"card exp_month must be 1-12, got {exp_month}")
        if exp_year < 100:
            exp_year += 2000
        if (exp_year, exp_month) < (today.year, today.month):
            raise PaymentMethodError(f"card expired {exp_month:02d}/{exp_year}")
        brand = str(data["brand"]).lower() if data.get("brand") else None
    if kind in (MethodKind.UPI, MethodKind.UPI_MANDATE):
        vpa = data.get("vpa")
        if not isinstance(vpa, str) or not VPA_RE.fullmatch(vpa):
            raise PaymentMethodError(f"UPI VPA must look like name@handle, got {vpa!r}")
    max_amount = data.get("max_amount_minor")
    if max_amount is not None:
        if kind not in MANDATES:
            raise PaymentMethodError("max_amount_minor applies only to mandates")
        if not isinstance(max_amount, int) or isinstance(max_amount, bool) or max_amount <= 0:
            raise PaymentMethodError(
                f"max_amount_minor must be a positive integer, got {max_amount!r}"
            )
    issuer = data.get("issuer") or data.get("bank") or data.get("wallet")
    return StoredPaymentMethod(
        kind=kind, token=token, customer_id=data.get("customer_id"), brand=brand, last4=last4,
        exp_month=exp_month, exp_year=exp_year, issuer=str(issuer) if issuer else None, vpa=vpa,
        max_amount_minor=max_amount,
    )  # fmt: skip


@dataclass(frozen=True)
class ChargeCheck:
    requires_authentication: bool
    reason: str | None = None


def check_charge(
    method: StoredPaymentMethod, amount_minor: int, currency: str, today: date
) -> ChargeCheck:
    """Raise when the charge is impossible; say when it needs the customer's authentication."""
    if amount_minor <= 0:
        raise PaymentMethodError(f"amount must be positive, got {amount_minor}")
    currency = normalize_currency(currency)
    if method.kind in INR_ONLY and currency != "INR":
        raise CurrencyNotAllowed(f"{method.kind.value} works only in INR, not {currency}")
    limit = LIMITS_MINOR.get(method.kind)
    if limit is not None and amount_minor > limit:
        raise AmountOverLimit(
            f"{method.kind.value} allows at most {limit} paise per transaction, got {amount_minor}"
        )
    if method.max_amount_minor is not None and amount_minor > method.max_amount_minor:
        raise AmountOverLimit(
            f"mandate {method.token} is registered for at most {method.max_amount_minor}, got {amount_minor}"
        )
    if (
        method.exp_year is not None
        and method.exp_month is not None
        and (method.exp_year, method.exp_month) < (today.year, today.month)
    ):
        raise PaymentMethodError(
            f"card {method.token} expired {method.exp_month:02d}/{method.exp_year}"
        )
    if method.kind in MANDATES and amount_minor > MANDATE_SILENT_LIMIT_MINOR:
        return ChargeCheck(True, "mandate debit above ₹15,000 needs the customer's authentication")
    return ChargeCheck(False)


def check_refund(captured_minor: int, refunded_minor: int, amount_minor: int) -> int:
    """The amount left refundable after this refund; raises when it would exceed the capture."""
    if amount_minor <= 0:
        raise PaymentMethodError(f"refund amount must be positive, got {amount_minor}")
    left = captured_minor - refunded_minor
    if amount_minor > left:
        raise RefundExceedsCaptured(
            f"refund of {amount_minor} exceeds the {left} still refundable "
            f"(captured {captured_minor}, already refunded {refunded_minor})"
        )
    return left - amount_minor


def expiring_cards(
    methods: Iterable[StoredPaymentMethod], as_of: datetime | date, within_months: int = 1
) -> list[StoredPaymentMethod]:
    """Cards (and card mandates) whose last valid month is within `within_months` of `as_of`,
    including ones already expired, so dunning can ask for new details before renewals fail."""
    today = as_of.date() if isinstance(as_of, datetime) else as_of
    horizon = today.year * 12 + today.month - 1 + within_months
    return [
        m
        for m in methods
        if m.exp_year is not None
        and m.exp_month is not None
        and m.exp_year * 12 + m.exp_month - 1 <= horizon
    ]
