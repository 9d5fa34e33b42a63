"""Shared field readers for normalizers: exact money, ISO currency, UTC timestamps, extra JSON."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from billing_jobs.money import MoneyError, normalize_currency

# Never persisted anywhere, at any depth: card number, card security code, UPI PIN.
SENSITIVE_KEYS = frozenset({"number", "cvc", "cvv", "cvv2", "pin", "upi_pin", "card_number"})


class NormalizationError(ValueError):
    """A gateway object cannot be normalized; the message names the object and the field."""

    def __init__(self, kind: str, object_id: object, field: str, problem: str) -> None:
        self.kind = kind
        self.object_id = object_id
        self.field = field
        super().__init__(f"{kind} {object_id or '<no id>'}: field {field!r}: {problem}")


class Reader:
    """Reads typed fields of one object and remembers which top-level keys became columns."""

    def __init__(self, kind: str, obj: Mapping[str, Any]) -> None:
        if not isinstance(obj, Mapping):
            raise NormalizationError(kind, None, "<object>", f"expected a JSON object, got {obj!r}")
        self.kind = kind
        self.obj = obj
        self.used: set[str] = set()
        self.object_id: object = obj.get("id")

    def fail(self, field: str, problem: str) -> NormalizationError:
        return NormalizationError(self.kind, self.object_id, field, problem)

    def id(self, field: str = "id") -> str:
        value = self.obj.get(field)
        self.used.add(field)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(field, f"a non-empty string id is required, got {value!r}")
        return value

    def text(self, field: str) -> str | None:
        value = self.obj.get(field)
        self.used.add(field)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, bool | int):
            return str(value)
        if isinstance(value, Mapping) and isinstance(value.get("id"), str):
            return value["id"]  # an expanded object: keep its id as the reference
        raise self.fail(field, f"expected a string, got {type(value).__name__}")

    def flag(self, field: str) -> bool | None:
        value = self.obj.get(field)
        self.used.add(field)
        if value is None or isinstance(value, bool):
            return value
        if value in (0, 1):
            return bool(value)
        raise self.fail(field, f"expected a boolean, got {value!r}")

    def integer(self, field: str, required: bool = False) -> int | None:
        value = self.obj.get(field)
        self.used.add(field)
        if value is None:
            if required:
                raise self.fail(field, "is required")
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(field, f"expected an integer, got {type(value).__name__} {value!r}")
        return value

    def minor(self, field: str, required: bool = False) -> int | None:
        """An amount already in minor units; strings and floats are refused, not coerced."""
        value = self.obj.get(field)
        self.used.add(field)
        if value is None:
            if required:
                raise self.fail(field, "amount is required")
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(
                field,
                f"amount must be an integer count of minor units, got "
                f"{type(value).__name__} {value!r}",
            )
        return value

    def currency(self, field: str = "currency", default: str | None = None) -> str | None:
        value = self.obj.get(field)
        self.used.add(field)
        if value is None:
            return default
        try:
            return normalize_currency(value)
        except MoneyError as exc:
            raise self.fail(field, str(exc)) from exc

    def timestamp(self, field: str, required: bool = False) -> datetime | None:
        value = self.obj.get(field)
        self.used.add(field)
        if value is None:
            if required:
                raise self.fail(field, "timestamp is required")
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(field, f"expected epoch seconds (integer), got {value!r}")
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise self.fail(field, f"epoch seconds out of range: {value}") from exc

    def nested(self, *path: str) -> Any:
        """Read a nested value without consuming the top-level key (it stays in extra)."""
        node: Any = self.obj
        for key in path:
            if not isinstance(node, Mapping):
                return None
            node = node.get(key)
        return node

    def extra(self, drop: Iterable[str] = ()) -> str:
        dropped = self.used | set(drop)
        rest = {k: v for k, v in self.obj.items() if k not in dropped}
        return json.dumps(scrub(rest), sort_keys=True, separators=(",", ":"), default=str)


def scrub(value: Any) -> Any:
    """Remove card numbers, security codes and PINs at any depth; mask UPI addresses to
    their PSP handle ("name@okhdfcbank" -> "@okhdfcbank")."""
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            key = k.lower() if isinstance(k, str) else k
            if key in SENSITIVE_KEYS:
                continue
            if key == "vpa" and isinstance(v, str):
                handle = vpa_handle(v)
                out[k] = f"@{handle}" if handle else None
                continue
            out[k] = scrub(v)
        return out
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def vpa_handle(vpa: object) -> str | None:
    """The PSP handle of a UPI address ("name@okhdfcbank" -> "okhdfcbank"); never the PIN."""
    if not isinstance(vpa, str) or "@" not in vpa:
        return None
    return vpa.rsplit("@", 1)[1].strip().lower() or None


def nested_minor(reader: Reader, field: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise reader.fail(field, f"amount must be an integer count of minor units, got {value!r}")
    return value


# One column set for a payment attempt from any gateway (Stripe charge, Razorpay payment), so
# staging models union them without renaming.
PAYMENT_COLUMNS: tuple[str, ...] = (
    "gateway",
    "object_type",
    "gateway_payment_id",
    "created_at",
    "status",
    "amount_minor",
    "amount_refunded_minor",
    "currency",
    "captured",
    "customer_id",
    "invoice_id",
    "order_id",
    "payment_intent_id",
    "payment_method_id",
    "method",
    "card_network",
    "card_funding",
    "card_issuer",
    "card_country",
    "bank",
    "wallet",
    "vpa_handle",
    "decline_code",
    "failure_message",
    "fee_minor",
    "fee_tax_minor",
    "balance_transaction_id",
    "settlement_id",
    "extra",
)
