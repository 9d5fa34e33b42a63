"""Normalizers: real gateway objects -> raw warehouse rows with stable columns and exact money."""

from ingestion.normalizers.common import (
    PAYMENT_COLUMNS,
    SENSITIVE_KEYS,
    NormalizationError,
    scrub,
    vpa_handle,
)
from ingestion.normalizers.razorpay import normalize_razorpay
from ingestion.normalizers.stripe import normalize_stripe

__all__ = [
    "PAYMENT_COLUMNS",
    "SENSITIVE_KEYS",
    "NormalizationError",
    "normalize_razorpay",
    "normalize_stripe",
    "scrub",
    "vpa_handle",
]
