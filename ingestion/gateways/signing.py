"""Stripe-scheme webhook signatures (`t=..,v1=..`, HMAC-SHA256 of "{t}.{body}"), time as an argument."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

DEFAULT_TOLERANCE_SECONDS = 300


class SignatureError(ValueError):
    """The signature header is missing, malformed, stale or does not match the body."""


def stripe_signature(body: bytes, secret: str, at: datetime) -> str:
    """The `Stripe-Signature` header value for `body` signed at `at`."""
    t = int(at.timestamp())
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify_stripe_signature(
    body: bytes,
    header: str | None,
    secret: str,
    now: datetime,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> int:
    """Check the header against the raw body; returns the signed timestamp. Any matching v1 passes."""
    if not header:
        raise SignatureError("missing Stripe-Signature header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError(f"malformed Stripe-Signature element {part.strip()!r}")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise SignatureError(f"timestamp {value!r} is not an integer") from None
        elif key == "v1":
            candidates.append(value)
    if timestamp is None:
        raise SignatureError("Stripe-Signature has no t= timestamp")
    if not candidates:
        raise SignatureError("Stripe-Signature has no v1= signature")
    if abs(int(now.timestamp()) - timestamp) > tolerance_seconds:
        raise SignatureError(
            f"timestamp {timestamp} outside the {tolerance_seconds}s tolerance of now"
        )
    expected = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise SignatureError("no v1 signature matches the body")
    return timestamp
