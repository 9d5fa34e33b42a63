"""Domain exceptions of the billing engine; every message says what was wrong."""

from __future__ import annotations


class BillingError(ValueError):
    """Base class for rejected billing input or operations."""


class NotFoundError(BillingError):
    """A referenced customer, plan, subscription, invoice or coupon does not exist."""


class ValidationError(BillingError):
    """Input failed validation (quantity, currency, dates, identifiers)."""


class InvalidGSTINError(ValidationError):
    """A GSTIN failed its format, state-code or checksum test."""


class InvalidTransitionError(BillingError):
    """A subscription or invoice status change that the state machine does not allow."""


class CatalogError(BillingError):
    """The catalog YAML is malformed or tries to mutate an immutable record."""


class IdempotencyConflictError(BillingError):
    """An idempotency key was reused with a different request."""
