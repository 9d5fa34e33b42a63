"""How the simulated world's payers behave: decline codes by method/issuer, and retry success that
depends on hours since the failure and on the day of month (salary days: the 1st and the last
working day). Pure functions of their inputs; the gateway draws a deterministic uniform to decide.
"""

from __future__ import annotations

import calendar
import hashlib
import math
from datetime import date, datetime, timedelta, timezone

IST = timezone(timedelta(hours=5, minutes=30))

# Soft-decline propensity per issuer on a first attempt (SBI is the weak one, as in the history).
BASE_FAIL: dict[str, float] = {
    "hdfc": 0.06, "icici": 0.07, "sbi": 0.12, "axis": 0.08, "kotak": 0.07,
    "okhdfcbank": 0.05, "okicici": 0.06, "oksbi": 0.10, "ybl": 0.07,
    "HDFC": 0.05, "ICIC": 0.06, "SBIN": 0.11, "UTIB": 0.07,
    "paytm": 0.05, "phonepe": 0.05, "amazonpay": 0.06,
}  # fmt: skip
METHOD_ISSUERS: dict[str, tuple[str, ...]] = {
    "card": ("hdfc", "icici", "sbi", "axis", "kotak"),
    "upi": ("okhdfcbank", "okicici", "oksbi", "ybl"),
    "netbanking": ("HDFC", "ICIC", "SBIN", "UTIB"),
    "wallet": ("paytm", "phonepe", "amazonpay"),
}
# Real decline codes per method (Stripe codes for cards; Razorpay reasons for UPI/NB/wallets).
CODE_MIX: dict[str, tuple[tuple[str, float], ...]] = {
    "card": (
        ("insufficient_funds", 0.40), ("do_not_honor", 0.11), ("generic_decline", 0.06),
        ("issuer_not_available", 0.09), ("processing_error", 0.06), ("try_again_later", 0.05),
        ("card_velocity_exceeded", 0.05), ("expired_card", 0.04), ("authentication_required", 0.04),
        ("lost_card", 0.02), ("stolen_card", 0.01), ("fraudulent", 0.01), ("invalid_account", 0.02),
        ("pickup_card", 0.01), ("restricted_card", 0.01), ("incorrect_cvc", 0.02),
    ),
    "upi": (
        ("insufficient_funds", 0.42), ("upi_app_not_responding", 0.14),
        ("payment_collect_request_expired", 0.12), ("bank_technical_error", 0.12),
        ("transaction_limit_exceeded", 0.06), ("mandate_revoked", 0.07), ("invalid_vpa", 0.03),
        ("mandate_paused", 0.04),
    ),
    "netbanking": (
        ("insufficient_funds", 0.45), ("bank_technical_error", 0.2), ("payment_declined", 0.15),
        ("payment_timed_out", 0.12), ("account_frozen", 0.08),
    ),
    "wallet": (
        ("insufficient_funds", 0.6), ("gateway_technical_error", 0.25), ("payment_declined", 0.15),
    ),
}  # fmt: skip
# SBI-family issuers are often simply unreachable rather than out of funds.
UNRELIABLE = {
    "sbi": "issuer_not_available",
    "oksbi": "bank_technical_error",
    "SBIN": "bank_technical_error",
}
TRANSIENT = {
    "issuer_not_available", "processing_error", "try_again_later", "bank_technical_error",
    "upi_app_not_responding", "gateway_technical_error", "payment_timed_out",
    "payment_collect_request_expired", "gateway_timeout",
}  # fmt: skip
LIMITS = {"card_velocity_exceeded", "transaction_limit_exceeded"}
VAGUE = {"do_not_honor", "generic_decline", "payment_declined", "card_declined"}


def uniform(*parts: object) -> float:
    """A deterministic number in [0, 1) for the given parts."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def pick(weighted: tuple[tuple[str, float], ...], u: float) -> str:
    total = sum(w for _, w in weighted)
    acc = 0.0
    for name, w in weighted:
        acc += w / total
        if u < acc:
            return name
    return weighted[-1][0]


def last_working_day(year: int, month: int) -> date:
    d = date(year, month, calendar.monthrange(year, month)[1])
    while d.weekday() >= 5:
        d -= timedelta(days=1)
    return d


def salary_boost(at: datetime) -> float:
    """1.0 on and just after salary credit (last working day, 1st-2nd), fading over ~5 days."""
    local = at.astimezone(IST).date()
    lwd = last_working_day(local.year, local.month)
    if local >= lwd:
        return 1.0
    since_payday = local.day - 1  # the 1st counts as day 0 after the previous month's salary
    return max(0.0, 1.0 - 0.22 * max(0, since_payday - 1))


def first_attempt_fails(issuer: str, at: datetime, u: float) -> bool:
    fail = BASE_FAIL.get(issuer, 0.08) * 1.6 * (1.3 - 0.6 * salary_boost(at))
    return u < fail


def decline_code(method: str, issuer: str, u: float) -> str:
    if issuer in UNRELIABLE and u < 0.3:
        return UNRELIABLE[issuer]
    return pick(CODE_MIX[method], (u - 0.3) / 0.7 if issuer in UNRELIABLE else u)


def retry_success_probability(
    code: str, hours_since_failure: float, at: datetime, attempt_number: int, resilience: float
) -> float:
    """P(success) of retrying a payment that last failed with `code`, `hours_since_failure` ago."""
    h = max(0.0, hours_since_failure)
    pay = salary_boost(at)
    if code == "insufficient_funds":
        p = 0.06 + 0.64 * pay + 0.08 * min(h / 240, 1.0)
    elif code in TRANSIENT:
        p = 0.85 * (1 - math.exp(-h / 18))
    elif code in LIMITS:
        p = 0.08 if h < 24 else 0.7
    elif code in VAGUE:
        p = 0.18 + 0.3 * pay + 0.1 * min(h / 120, 1.0)
    else:
        p = 0.25
    fatigue = 0.9 ** max(0, attempt_number - 2)
    return max(0.0, min(0.97, p * fatigue * resilience))


def resilience(seed: int, customer_id: str) -> float:
    """Per-customer multiplier in [0.6, 1.15): some payers simply recover less often."""
    return 0.6 + 0.55 * uniform(seed, "resilience", customer_id)
