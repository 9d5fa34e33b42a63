"""Normalizers: real gateway objects -> raw warehouse rows with stable columns and exact money."""

from collections.abc import Iterable, Mapping
from typing import Any

from ingestion.normalizers.common import (
    PAYMENT_COLUMNS,
    SENSITIVE_KEYS,
    NormalizationError,
    scrub,
    vpa_handle,
)
from ingestion.normalizers.razorpay import normalize_razorpay
from ingestion.normalizers.stripe import normalize_stripe


def normalize_objects(gateway: str, objects: Iterable[Mapping[str, Any]]) -> dict[str, list[dict]]:
    """Normalize many objects of one gateway; rows grouped by object type (one raw table each).

    Raises NormalizationError on the first malformed object, naming it and the field.
    """
    normalize = {"stripe": normalize_stripe, "razorpay": normalize_razorpay}.get(gateway)
    if normalize is None:
        raise ValueError(f"unknown gateway {gateway!r}: expected 'stripe' or 'razorpay'")
    tables: dict[str, list[dict]] = {}
    for obj in objects:
        kind, row = normalize(obj)
        tables.setdefault(kind, []).append(row)
    return tables


__all__ = [
    "PAYMENT_COLUMNS",
    "SENSITIVE_KEYS",
    "NormalizationError",
    "normalize_objects",
    "normalize_razorpay",
    "normalize_stripe",
    "scrub",
    "vpa_handle",
]
