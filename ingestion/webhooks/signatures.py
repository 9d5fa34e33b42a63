"""Signature checks over raw request bytes (Stripe scheme and Razorpay scheme): the one verifier
of the project, used by the webhook receiver, the Stripe adapter (`StripeGateway.verify_webhook`)
and the simulated gateway's signed deliveries. Time is an argument (epoch seconds)."""

from __future__ import annotations

import hmac
from collections.abc import Sequence


class SignatureError(ValueError):
    """The request signature (or its timestamp) is missing, malformed or does not match."""


def stripe_signature(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of `"{t}.{body}"`, as Stripe computes `v1`."""
    # hmac.digest is OpenSSL's one-shot HMAC: several times cheaper than an hmac.new object.
    return hmac.digest(secret.encode(), b"%d." % timestamp + body, "sha256").hex()


def sign_stripe(secret: str, body: bytes, timestamp: float) -> str:
    """The `Stripe-Signature` header value for `body` signed at `timestamp` (epoch seconds)."""
    t = int(timestamp)
    return f"t={t},v1={stripe_signature(secret, t, body)}"


def razorpay_signature(secret: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of the raw body, as Razorpay computes `X-Razorpay-Signature`."""
    return hmac.digest(secret.encode(), body, "sha256").hex()


def verify_stripe(
    header: str | None,
    body: bytes,
    secrets: Sequence[str],
    now: float,
    tolerance_s: int,
    max_signatures: int = 16,
) -> int:
    """Check a `Stripe-Signature` header; return its timestamp or raise SignatureError.

    Any `v1` matching any configured secret passes (Stripe sends several during rotation).
    """
    if not header:
        raise SignatureError("missing Stripe-Signature header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            if not value.isascii() or not value.isdigit() or len(value) > 12:
                raise SignatureError("Stripe-Signature timestamp is not an integer")
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value.strip().lower())
    if timestamp is None:
        raise SignatureError("Stripe-Signature has no t= timestamp")
    if not candidates:
        raise SignatureError("Stripe-Signature has no v1 signature")
    if len(candidates) > max_signatures:
        raise SignatureError(f"Stripe-Signature has more than {max_signatures} v1 signatures")
    if abs(now - timestamp) > tolerance_s:
        raise SignatureError(f"Stripe-Signature timestamp outside the {tolerance_s} s tolerance")
    expected = [stripe_signature(s, timestamp, body).encode() for s in secrets]
    # Compare every pair without short-circuiting on the secret so timing reveals nothing.
    ok = False
    for candidate in candidates:
        raw = candidate.encode("ascii", "replace")
        for exp in expected:
            ok |= hmac.compare_digest(raw, exp)
    if not ok:
        raise SignatureError("no Stripe-Signature v1 matches a configured secret")
    return timestamp


def verify_razorpay(header: str | None, body: bytes, secrets: Sequence[str]) -> None:
    """Check `X-Razorpay-Signature` (hex HMAC-SHA256 of the raw body) or raise SignatureError."""
    if not header:
        raise SignatureError("missing X-Razorpay-Signature header")
    raw = header.strip().lower().encode("ascii", "replace")
    ok = False
    for secret in secrets:
        ok |= hmac.compare_digest(raw, razorpay_signature(secret, body).encode())
    if not ok:
        raise SignatureError("X-Razorpay-Signature does not match a configured secret")
