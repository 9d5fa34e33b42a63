"""Razorpay adapter of the `Gateway` port, through the official `razorpay` SDK (amounts in paise).

Recurring charges go through an order (its `receipt` is our idempotency key, so a retried request
finds the existing order instead of charging again) and `payments/create/recurring` on a saved
token (card, UPI AutoPay, e-NACH). Settlements and the settlement recon report are read too.
Ingestion reads payments and customers whole (`list_objects`). Network retries are
ingestion.gateways.retry's, on the SDK's `requests` session (the SDK's own would resend a
timed-out POST, ignore Retry-After and 5xx, and print to stdout).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import razorpay
import requests
from razorpay import errors as rzp_errors

from billing_jobs.money import normalize_currency
from billing_jobs.payments.gateway import (
    IDEMPOTENCY_METADATA_KEY,
    BalanceTransaction,
    Customer,
    Dispute,
    GatewayError,
    GatewayEvent,
    GatewayTimeout,
    NotFound,
    Page,
    PaymentMethod,
    PaymentResult,
    PaymentStatus,
    Payout,
    Refund,
    Unsupported,
)
from ingestion.gateways.cursor import page_since, parse_cursor
from ingestion.gateways.retry import RetryPolicy, retrying_session

# Razorpay payment states -> port states. `authorized` is money held but not yet captured.
_STATUS = {
    "created": PaymentStatus.PENDING,
    "authorized": PaymentStatus.PENDING,
    "captured": PaymentStatus.SUCCEEDED,
    "refunded": PaymentStatus.SUCCEEDED,
    "failed": PaymentStatus.FAILED,
}
PAGE_MAX = 100  # Razorpay's largest `count`


@dataclass(frozen=True)
class RazorpayConfig:
    key_id: str
    key_secret: str
    base_url: str | None = None
    webhook_secret: str | None = None
    timeout_seconds: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RazorpayConfig:
        env = os.environ if environ is None else environ
        key_id, secret = env.get("RAZORPAY_KEY_ID"), env.get("RAZORPAY_KEY_SECRET")
        if not key_id or not secret:
            raise GatewayError("RAZORPAY_KEY_ID and RAZORPAY_KEY_SECRET must both be set")
        return cls(
            key_id,
            secret,
            base_url=env.get("RAZORPAY_API_BASE") or None,
            webhook_secret=env.get("RAZORPAY_WEBHOOK_SECRET") or None,
        )


def _ts(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if value not in (None, "") else None


def _int(obj: Mapping[str, Any], key: str, default: int | None = None) -> int:
    value = obj.get(key, default)
    if value is None or isinstance(value, bool):
        raise GatewayError(
            f"razorpay: {obj.get('entity', 'object')} {obj.get('id')} has no integer {key!r}"
        )
    try:
        return int(value)
    except (TypeError, ValueError):
        raise GatewayError(f"razorpay: {key}={value!r} is not an integer") from None


def _notes(obj: Mapping[str, Any]) -> dict[str, str]:
    notes = obj.get("notes")
    # Razorpay sends `[]` for empty notes.
    return {str(k): str(v) for k, v in notes.items()} if isinstance(notes, dict) else {}


def payment_result(p: Mapping[str, Any]) -> PaymentResult:
    """A Razorpay payment entity as a port result; failures carry `error_reason` as the code."""
    status = _STATUS.get(str(p.get("status")))
    if status is None:
        raise GatewayError(
            f"razorpay: payment {p.get('id')} has unknown status {p.get('status')!r}"
        )
    notes = _notes(p)
    failed = status is PaymentStatus.FAILED
    return PaymentResult(
        status=status,
        gateway_payment_id=str(p["id"]),
        amount_minor=_int(p, "amount"),
        currency=normalize_currency(str(p.get("currency") or "INR")),
        decline_code=(p.get("error_reason") or p.get("error_code")) if failed else None,
        decline_message=p.get("error_description") if failed else None,
        idempotency_key=notes.get(IDEMPOTENCY_METADATA_KEY),
        created_at=_ts(p.get("created_at")),
        metadata={**notes, "method": str(p.get("method") or "")},
    )


class RazorpayGateway:
    """The `Gateway` port over Razorpay."""

    name = "razorpay"

    def __init__(self, config: RazorpayConfig) -> None:
        opts = {"base_url": config.base_url} if config.base_url else {}
        self.client = razorpay.Client(
            session=retrying_session(config.retry),
            auth=(config.key_id, config.key_secret),
            **opts,
        )
        self.config = config

    def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            out = fn(*args, timeout=self.config.timeout_seconds)
        except (requests.Timeout, requests.ConnectionError) as e:
            raise GatewayTimeout(f"razorpay: no answer ({type(e).__name__})") from e
        except rzp_errors.BadRequestError as e:
            msg = str(e)
            if "does not exist" in msg or "not found" in msg.lower():
                raise NotFound(f"razorpay: {msg}", status=404) from e
            raise GatewayError(f"razorpay: {msg}", code="BAD_REQUEST_ERROR", status=400) from e
        except (rzp_errors.GatewayError, rzp_errors.ServerError) as e:
            raise GatewayError(f"razorpay: {e}", status=502) from e
        except (json.JSONDecodeError, requests.exceptions.JSONDecodeError) as e:
            raise GatewayError(f"razorpay: response is not valid JSON ({e})") from e
        if isinstance(out, str):  # the SDK returns '{}' (a str) for 204
            out = json.loads(out)
        if not isinstance(out, dict):
            raise GatewayError(f"razorpay: expected a JSON object, got {type(out).__name__}")
        return out

    # -- customers and tokens ------------------------------------------------------------------
    def create_customer(
        self,
        *,
        email: str | None = None,
        name: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Customer:
        data: dict[str, Any] = {"notes": dict(metadata or {}), "fail_existing": "0"}
        if email:
            data["email"] = email
        if name:
            data["name"] = name
        c = self._call(self.client.customer.create, data)
        return Customer(str(c["id"]), c.get("email"), c.get("name"), _notes(c))

    def attach_payment_method(self, customer_id: str, token: str) -> PaymentMethod:
        # Razorpay saves tokens at checkout; attaching means confirming it belongs to the customer.
        return self._pm(self._call(self.client.token.fetch, customer_id, token), customer_id)

    def detach_payment_method(self, token: str) -> None:
        customer_id, sep, token_id = token.partition("/")
        if not sep:
            raise GatewayError("razorpay tokens are detached as '<customer_id>/<token_id>'")
        self._call(self.client.token.delete, customer_id, token_id)

    def list_payment_methods(self, customer_id: str) -> list[PaymentMethod]:
        out = self._call(self.client.token.all, customer_id)
        return [self._pm(t, customer_id) for t in out.get("items", [])]

    @staticmethod
    def _pm(t: Mapping[str, Any], customer_id: str) -> PaymentMethod:
        method = str(t.get("method") or "card")
        card = t.get("card") if isinstance(t.get("card"), dict) else {}
        recurring = bool(t.get("recurring"))
        kind = (
            {"card": "card_mandate", "upi": "upi_mandate"}.get(method, method)
            if recurring
            else method
        )
        return PaymentMethod(
            token=str(t["id"]),
            kind=kind,
            customer_id=customer_id,
            brand=card.get("network"),
            last4=str(card["last4"]) if card.get("last4") is not None else None,
            exp_month=int(card["expiry_month"]) if card.get("expiry_month") else None,
            exp_year=int(card["expiry_year"]) if card.get("expiry_year") else None,
            issuer=card.get("issuer") or t.get("bank") or t.get("wallet"),
        )

    # -- payments ------------------------------------------------------------------------------
    def charge(
        self,
        customer_id: str,
        payment_method: str,
        amount_minor: int,
        currency: str,
        idempotency_key: str,
        *,
        off_session: bool = True,
        metadata: Mapping[str, str] | None = None,
    ) -> PaymentResult:
        currency = normalize_currency(currency)
        if amount_minor < 100:
            raise GatewayError(f"razorpay: amount {amount_minor} is below the 100 paise minimum")
        notes = {**(metadata or {}), IDEMPOTENCY_METADATA_KEY: idempotency_key}
        existing = self.find_payment(idempotency_key)
        if existing is not None:
            return existing  # same key, same answer: never a second debit
        order = self._call(
            self.client.order.create,
            {
                "amount": amount_minor,
                "currency": currency,
                "receipt": idempotency_key[:40],
                "notes": notes,
            },
        )
        created = self._call(
            self.client.payment.createRecurring,
            {
                "amount": amount_minor,
                "currency": currency,
                "order_id": order["id"],
                "customer_id": customer_id,
                "token": payment_method,
                "recurring": "1",
                "notes": notes,
            },
        )
        pay_id = created.get("razorpay_payment_id")
        if not pay_id:
            raise GatewayError("razorpay: recurring payment response has no razorpay_payment_id")
        # Recurring debits settle asynchronously; the outcome arrives by webhook or fetch.
        return PaymentResult(
            status=PaymentStatus.PENDING,
            gateway_payment_id=str(pay_id),
            amount_minor=amount_minor,
            currency=currency,
            idempotency_key=idempotency_key,
            metadata=notes,
        )

    def fetch_payment(self, gateway_payment_id: str) -> PaymentResult:
        return payment_result(self._call(self.client.payment.fetch, gateway_payment_id))

    def find_payment(self, idempotency_key: str) -> PaymentResult | None:
        orders = self._call(self.client.order.all, {"receipt": idempotency_key[:40]})
        for order in orders.get("items", []):
            if order.get("receipt") != idempotency_key[:40]:
                continue
            pays = self._call(self.client.order.payments, order["id"]).get("items", [])
            results = [payment_result(p) for p in pays]
            if results:
                # A captured payment wins over failed tries on the same order.
                results.sort(
                    key=lambda r: (r.succeeded, r.created_at or datetime.min.replace(tzinfo=UTC))
                )
                return results[-1]
        return None

    def refund(
        self,
        gateway_payment_id: str,
        amount_minor: int | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Refund:
        data: dict[str, Any] = {}
        if amount_minor is not None:
            if amount_minor <= 0:
                raise GatewayError(f"refund amount must be positive, got {amount_minor}")
            data["amount"] = amount_minor
        if idempotency_key:
            data["receipt"] = idempotency_key[:40]
        return self._refund(self._call(self.client.payment.refund, gateway_payment_id, data))

    @staticmethod
    def _refund(r: Mapping[str, Any]) -> Refund:
        return Refund(
            gateway_refund_id=str(r["id"]),
            gateway_payment_id=str(r.get("payment_id") or ""),
            amount_minor=_int(r, "amount"),
            currency=normalize_currency(str(r.get("currency") or "INR")),
            status=str(r.get("status") or "processed"),
            created_at=_ts(r.get("created_at")),
        )

    # -- listings ------------------------------------------------------------------------------
    def _collect(self, fn: Callable[..., Any], since: int) -> list[dict[str, Any]]:
        """Every item created at/after `since`, walking Razorpay's count/skip pages."""
        items: list[dict[str, Any]] = []
        skip = 0
        while True:
            params: dict[str, Any] = {"count": PAGE_MAX, "skip": skip}
            if since:
                params["from"] = since
            batch = self._call(fn, params).get("items", [])
            if not isinstance(batch, list):
                raise GatewayError("razorpay: collection 'items' is not a list")
            items += batch
            if len(batch) < PAGE_MAX:
                return items
            skip += len(batch)

    def _page(
        self, fn: Callable[..., Any], cursor: str | None, limit: int, convert: Callable
    ) -> Page:
        since, _ = parse_cursor(cursor)
        objs = self._collect(fn, since)
        items, nxt = page_since(
            objs, cursor, limit, lambda o: _int(o, "created_at"), lambda o: str(o["id"])
        )
        return Page([convert(o) for o in items], nxt)

    def list_payments(self, cursor: str | None = None, limit: int = 100) -> Page[PaymentResult]:
        return self._page(self.client.payment.all, cursor, limit, payment_result)

    def list_objects(self, kind: str, cursor: str | None = None, limit: int = 100) -> Page[dict]:
        """Razorpay entities as the API returns them, for ingestion's normalizers: `payments`
        (method, card network/issuer/country, bank, wallet, VPA, fee and GST, error reason)
        and `customers`."""
        listings = {"payments": self.client.payment.all, "customers": self.client.customer.all}
        if kind not in listings:
            raise Unsupported(
                f"razorpay: no object listing {kind!r}; expected one of {sorted(listings)}"
            )
        return self._page(listings[kind], cursor, limit, dict)

    def list_refunds(self, cursor: str | None = None, limit: int = 100) -> Page[Refund]:
        return self._page(self.client.refund.all, cursor, limit, self._refund)

    def list_disputes(self, cursor: str | None = None, limit: int = 100) -> Page[Dispute]:
        def convert(d: Mapping[str, Any]) -> Dispute:
            return Dispute(
                gateway_dispute_id=str(d["id"]),
                gateway_payment_id=str(d.get("payment_id") or ""),
                amount_minor=_int(d, "amount"),
                currency=normalize_currency(str(d.get("currency") or "INR")),
                reason=str(d.get("reason_code") or "general"),
                status=str(d.get("status") or "open"),
                created_at=_ts(d.get("created_at")),
            )

        return self._page(self.client.dispute.all, cursor, limit, convert)

    def list_payouts(self, cursor: str | None = None, limit: int = 100) -> Page[Payout]:
        """Settlements: one bank credit per batch, net of fees and GST on fees."""

        def convert(s: Mapping[str, Any]) -> Payout:
            return Payout(
                gateway_payout_id=str(s["id"]),
                amount_minor=_int(s, "amount"),
                currency=normalize_currency(str(s.get("currency") or "INR")),
                status=str(s.get("status") or "created"),
                arrival_at=_ts(s.get("created_at")),
                fee_minor=_int(s, "fees", 0),
                fee_tax_minor=_int(s, "tax", 0),
                utr=s.get("utr"),
            )

        return self._page(self.client.settlement.all, cursor, limit, convert)

    def settlement_recon(
        self, year: int, month: int, day: int | None = None
    ) -> list[BalanceTransaction]:
        """The combined settlement recon report: per payment/refund, gross, fee, GST and settlement."""
        params: dict[str, Any] = {"year": year, "month": month, "count": PAGE_MAX}
        if day is not None:
            params["day"] = day
        out: list[BalanceTransaction] = []
        skip = 0
        while True:
            batch = self._call(self.client.settlement.report, {**params, "skip": skip}).get(
                "items", []
            )
            for row in batch:
                credit, debit = _int(row, "credit", 0), _int(row, "debit", 0)
                fee, tax = _int(row, "fee", 0), _int(row, "tax", 0)
                out.append(
                    BalanceTransaction(
                        gateway_txn_id=f"{row.get('settlement_id')}:{row['entity_id']}",
                        source_id=str(row["entity_id"]),
                        kind=str(row.get("type") or "payment"),
                        amount_minor=_int(row, "amount"),
                        # Razorpay's `fee` includes the GST on it; the port keeps them apart.
                        fee_minor=fee - tax,
                        fee_tax_minor=tax,
                        net_minor=credit - debit,
                        currency=normalize_currency(str(row.get("currency") or "INR")),
                        created_at=_ts(row.get("created_at")),
                        available_on=_ts(row.get("settled_at")),
                    )
                )
            if len(batch) < PAGE_MAX:
                return out
            skip += len(batch)

    def list_balance_transactions(
        self, cursor: str | None = None, limit: int = 100
    ) -> Page[BalanceTransaction]:
        """Razorpay has no balance-transaction list; fees come from `settlement_recon` per day."""
        raise Unsupported(
            "razorpay has no balance-transaction listing; call settlement_recon(year, month, day)"
        )

    def list_events(self, cursor: str | None = None, limit: int = 100) -> Page[GatewayEvent]:
        """Razorpay has no events API; its events arrive only as webhooks (see the receiver)."""
        raise Unsupported("razorpay has no events API; events arrive as webhooks only")
