"""Stripe adapter of the `Gateway` port, through the official SDK (`stripe.StripeClient`).

PaymentIntents confirmed off-session, PaymentMethods by token, Refunds, BalanceTransactions,
Payouts, Disputes and Events. `STRIPE_API_BASE` points the SDK at another server (localstripe).
Ingestion reads the objects whole (`list_objects`): payment intents with their latest charge
and its balance transaction expanded, customers and the events listing. Network retries are
ingestion.gateways.retry's (backoff with jitter, `Retry-After`, writes only when safe).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import stripe

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
)
from ingestion.gateways.cursor import page_since, parse_cursor
from ingestion.gateways.retry import RetryPolicy, retrying_session
from ingestion.webhooks.signatures import verify_stripe

WEBHOOK_TOLERANCE_S = 300

PAYMENT_EXPAND = ("data.latest_charge", "data.latest_charge.balance_transaction")
_PI_STATUS = {
    "succeeded": PaymentStatus.SUCCEEDED,
    "processing": PaymentStatus.PENDING,
    "requires_capture": PaymentStatus.PENDING,
    "requires_action": PaymentStatus.REQUIRES_ACTION,
    "requires_confirmation": PaymentStatus.REQUIRES_ACTION,
    "requires_payment_method": PaymentStatus.FAILED,
    "canceled": PaymentStatus.FAILED,
}


@dataclass(frozen=True)
class StripeConfig:
    api_key: str
    api_base: str | None = None
    webhook_secret: str | None = None
    timeout_seconds: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StripeConfig:
        env = os.environ if environ is None else environ
        key = env.get("STRIPE_API_KEY")
        if not key:
            raise GatewayError("STRIPE_API_KEY is not set; the Stripe gateway needs a secret key")
        return cls(
            api_key=key,
            api_base=env.get("STRIPE_API_BASE") or None,
            webhook_secret=env.get("STRIPE_WEBHOOK_SECRET") or None,
        )


def _ts(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


def _id(value: Any) -> str | None:
    """Stripe fields are an id or an expanded object depending on the server and `expand`."""
    if value is None or isinstance(value, str):
        return value
    return value.get("id")


def _d(obj: Any) -> dict[str, Any]:
    """SDK objects are not dicts (stripe>=15): convert at the edge, recursively."""
    return obj if isinstance(obj, dict) else obj.to_dict()


def _fee_tax(bt: Any) -> tuple[int, int]:
    fee_tax = sum(d["amount"] for d in (bt.get("fee_details") or []) if d.get("type") == "tax")
    return int(bt.get("fee") or 0) - fee_tax, fee_tax


class StripeGateway:
    """The `Gateway` port over Stripe. Declines come back as failed `PaymentResult`s."""

    name = "stripe"

    def __init__(self, config: StripeConfig) -> None:
        # The SDK's own retries would resend a timed-out POST and ignore Retry-After; the
        # session's retry (ingestion.gateways.retry) does neither, so the SDK's are off.
        kwargs: dict[str, Any] = {"max_network_retries": 0}
        if config.api_base:
            kwargs["base_addresses"] = {"api": config.api_base}
        kwargs["http_client"] = stripe.RequestsClient(
            timeout=config.timeout_seconds, session=retrying_session(config.retry)
        )
        self.client = stripe.StripeClient(config.api_key, **kwargs)
        self.config = config

    def verify_webhook(self, body: bytes, header: str | None, now: datetime) -> dict[str, Any]:
        """The event in a webhook request from Stripe, after checking its `Stripe-Signature`
        against `STRIPE_WEBHOOK_SECRET` (the receiver's verifier; raises `SignatureError`)."""
        if not self.config.webhook_secret:
            raise GatewayError("STRIPE_WEBHOOK_SECRET is not set; cannot verify Stripe webhooks")
        verify_stripe(header, body, [self.config.webhook_secret], now=now.timestamp(),
                      tolerance_s=WEBHOOK_TOLERANCE_S)  # fmt: skip
        return json.loads(body)

    # -- error translation -------------------------------------------------------------------
    def _call(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except stripe.APIConnectionError as e:
            raise GatewayTimeout(f"stripe: no answer ({e.user_message or e})") from e
        except stripe.InvalidRequestError as e:
            if e.http_status == 404:
                raise NotFound(f"stripe: {e.user_message or e}", status=404) from e
            raise GatewayError(f"stripe: {e.user_message or e}", code=e.code, status=400) from e
        except stripe.StripeError as e:
            if e.http_status == 404:
                raise NotFound(f"stripe: {e.user_message or e}", status=404) from e
            raise GatewayError(
                f"stripe: {e.user_message or e}", code=e.code, status=e.http_status
            ) from e

    # -- customers and payment methods -------------------------------------------------------
    def create_customer(
        self,
        *,
        email: str | None = None,
        name: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Customer:
        params: dict[str, Any] = {"metadata": dict(metadata or {})}
        if email:
            params["email"] = email
        if name:
            params["name"] = name
        c = _d(self._call(lambda: self.client.v1.customers.create(params=params)))
        return Customer(c["id"], c.get("email"), c.get("name"), dict(c.get("metadata") or {}))

    def attach_payment_method(self, customer_id: str, token: str) -> PaymentMethod:
        pm = self._call(
            lambda: self.client.v1.payment_methods.attach(token, params={"customer": customer_id})
        )
        return self._pm(_d(pm))

    def detach_payment_method(self, token: str) -> None:
        self._call(lambda: self.client.v1.payment_methods.detach(token))

    def list_payment_methods(self, customer_id: str) -> list[PaymentMethod]:
        page = self._call(
            lambda: self.client.v1.payment_methods.list(
                params={"customer": customer_id, "type": "card"}
            )
        )
        return [self._pm(_d(pm)) for pm in self._call(lambda: list(page.auto_paging_iter()))]

    @staticmethod
    def _pm(pm: Any) -> PaymentMethod:
        card = pm.get("card") or {}
        return PaymentMethod(
            token=pm["id"],
            kind=pm.get("type") or "card",
            customer_id=_id(pm.get("customer")),
            brand=card.get("brand"),
            last4=card.get("last4"),
            exp_month=card.get("exp_month"),
            exp_year=card.get("exp_year"),
            issuer=card.get("issuer") or card.get("country"),
        )

    # -- payments ----------------------------------------------------------------------------
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
        if amount_minor <= 0:
            raise GatewayError(f"amount_minor must be positive, got {amount_minor}")
        meta = {**(metadata or {}), IDEMPOTENCY_METADATA_KEY: idempotency_key}
        params: dict[str, Any] = {
            "amount": amount_minor,
            "currency": currency.lower(),
            "customer": customer_id,
            "payment_method": payment_method,
            "confirm": True,
            "metadata": meta,
        }
        if off_session:
            params["off_session"] = True
        try:
            pi = self.client.v1.payment_intents.create(
                params=params, options={"idempotency_key": idempotency_key}
            )
        except stripe.CardError as e:
            # Off-session declines raise; the PaymentIntent (or charge) id is in the error body.
            err = (e.json_body or {}).get("error", {}) if isinstance(e.json_body, dict) else {}
            pi_obj = err.get("payment_intent") or {}
            return PaymentResult(
                status=PaymentStatus.FAILED,
                gateway_payment_id=_id(pi_obj) or err.get("charge"),
                amount_minor=amount_minor,
                currency=currency.upper(),
                decline_code=err.get("decline_code") or e.code or "card_declined",
                decline_message=e.user_message,
                idempotency_key=idempotency_key,
                metadata=meta,
            )
        except stripe.APIConnectionError as e:
            raise GatewayTimeout(f"stripe: charge outcome unknown ({e.user_message or e})") from e
        except stripe.StripeError as e:
            raise GatewayError(
                f"stripe: {e.user_message or e}", code=e.code, status=e.http_status
            ) from e
        return self._result(_d(pi))

    @staticmethod
    def _result(pi: Any) -> PaymentResult:
        status = _PI_STATUS.get(pi.get("status"), PaymentStatus.PENDING)
        err = pi.get("last_payment_error") or {}
        meta = dict(pi.get("metadata") or {})
        return PaymentResult(
            status=status,
            gateway_payment_id=pi["id"],
            amount_minor=int(pi.get("amount")),
            currency=str(pi.get("currency")).upper(),
            decline_code=(err.get("decline_code") or err.get("code"))
            if status is PaymentStatus.FAILED
            else None,
            decline_message=err.get("message") if status is PaymentStatus.FAILED else None,
            idempotency_key=meta.get(IDEMPOTENCY_METADATA_KEY),
            created_at=_ts(pi.get("created")),
            metadata=meta,
        )

    def fetch_payment(self, gateway_payment_id: str) -> PaymentResult:
        return self._result(
            _d(self._call(lambda: self.client.v1.payment_intents.retrieve(gateway_payment_id)))
        )

    def find_payment(self, idempotency_key: str) -> PaymentResult | None:
        query = f"metadata['{IDEMPOTENCY_METADATA_KEY}']:'{idempotency_key}'"
        try:
            found = [
                _d(pi)
                for pi in self._call(
                    lambda: list(
                        self.client.v1.payment_intents.search(
                            params={"query": query}
                        ).auto_paging_iter()
                    )
                )
            ]
        except NotFound:
            # Servers without the search API (localstripe): scan the list instead.
            found = [
                pi
                for pi in self._all(self.client.v1.payment_intents.list, created_filter=False)
                if (pi.get("metadata") or {}).get(IDEMPOTENCY_METADATA_KEY) == idempotency_key
            ]
        if not found:
            return None
        # A successful one wins over earlier failed tries under the same key.
        found.sort(key=lambda pi: (pi.get("status") == "succeeded", pi.get("created") or 0))
        return self._result(found[-1])

    def refund(
        self,
        gateway_payment_id: str,
        amount_minor: int | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Refund:
        if amount_minor is not None and amount_minor <= 0:
            raise GatewayError(f"refund amount must be positive, got {amount_minor}")
        params: dict[str, Any] = {"payment_intent": gateway_payment_id}
        if amount_minor is not None:
            params["amount"] = amount_minor
        options = {"idempotency_key": idempotency_key} if idempotency_key else {}
        r = self._call(lambda: self.client.v1.refunds.create(params=params, options=options))
        return self._refund(_d(r), gateway_payment_id)

    @staticmethod
    def _refund(r: Any, payment_id: str | None = None) -> Refund:
        return Refund(
            gateway_refund_id=r["id"],
            gateway_payment_id=payment_id or _id(r.get("payment_intent")) or _id(r.get("charge")),
            amount_minor=int(r.get("amount")),
            currency=str(r.get("currency")).upper(),
            status=r.get("status") or "succeeded",
            created_at=_ts(r.get("created")),
        )

    # -- listings since a cursor --------------------------------------------------------------
    def _all(
        self,
        list_fn: Callable[..., Any],
        *,
        created_filter: bool,
        since: int = 0,
        expand: tuple[str, ...] = (),
    ) -> list[Any]:
        params: dict[str, Any] = {"limit": 100}
        if expand:
            params["expand"] = list(expand)
        if created_filter and since:
            params["created"] = {"gte": since}
        try:
            return [
                _d(o) for o in self._call(lambda: list(list_fn(params=params).auto_paging_iter()))
            ]
        except GatewayError as e:
            if "created" in params and (e.status == 400 or (e.status or 0) >= 500):
                # Some servers refuse the `created` filter (localstripe: 400, or 500 on
                # refunds): list everything; the cursor still drops what was already read.
                params.pop("created")
                return [
                    _d(o)
                    for o in self._call(lambda: list(list_fn(params=params).auto_paging_iter()))
                ]
            raise

    def _page(
        self,
        list_fn: Callable[..., Any],
        cursor: str | None,
        limit: int,
        convert: Callable[[Any], Any],
        expand: tuple[str, ...] = (),
    ) -> Page:
        since, _ = parse_cursor(cursor)
        objs = self._all(list_fn, created_filter=True, since=since, expand=expand)
        items, nxt = page_since(
            objs, cursor, limit, lambda o: int(o.get("created") or 0), lambda o: o["id"]
        )
        return Page([convert(o) for o in items], nxt)

    def list_payments(self, cursor: str | None = None, limit: int = 100) -> Page[PaymentResult]:
        return self._page(self.client.v1.payment_intents.list, cursor, limit, self._result)

    def list_objects(self, kind: str, cursor: str | None = None, limit: int = 100) -> Page[dict]:
        """Stripe objects as the API returns them (dicts), for ingestion's normalizers.

        `payments` are PaymentIntents with `latest_charge` and its `balance_transaction`
        expanded: the charge holds the method, customer, issuer, card brand and country and
        the decline; the balance transaction the fee and GST on it.
        """
        listings = {
            "payments": (self.client.v1.payment_intents.list, PAYMENT_EXPAND),
            "customers": (self.client.v1.customers.list, ()),
            "events": (self.client.v1.events.list, ()),
        }
        if kind not in listings:
            raise GatewayError(
                f"stripe: no object listing {kind!r}; expected one of {sorted(listings)}"
            )
        list_fn, expand = listings[kind]
        return self._page(list_fn, cursor, limit, dict, expand=expand)

    def list_refunds(self, cursor: str | None = None, limit: int = 100) -> Page[Refund]:
        return self._page(self.client.v1.refunds.list, cursor, limit, self._refund)

    def list_disputes(self, cursor: str | None = None, limit: int = 100) -> Page[Dispute]:
        def convert(d: Any) -> Dispute:
            return Dispute(
                gateway_dispute_id=d["id"],
                gateway_payment_id=_id(d.get("payment_intent")) or _id(d.get("charge")) or "",
                amount_minor=int(d.get("amount")),
                currency=str(d.get("currency")).upper(),
                reason=d.get("reason") or "general",
                status=d.get("status") or "needs_response",
                created_at=_ts(d.get("created")),
            )

        return self._page(self.client.v1.disputes.list, cursor, limit, convert)

    def list_balance_transactions(
        self, cursor: str | None = None, limit: int = 100
    ) -> Page[BalanceTransaction]:
        def convert(bt: Any) -> BalanceTransaction:
            fee, tax = _fee_tax(bt)
            return BalanceTransaction(
                gateway_txn_id=bt["id"],
                source_id=_id(bt.get("source")),
                kind=bt.get("type") or "charge",
                amount_minor=int(bt.get("amount")),
                fee_minor=fee,
                fee_tax_minor=tax,
                net_minor=int(bt.get("net")),
                currency=str(bt.get("currency")).upper(),
                created_at=_ts(bt.get("created")),
                available_on=_ts(bt.get("available_on")),
            )

        return self._page(self.client.v1.balance_transactions.list, cursor, limit, convert)

    def list_payouts(self, cursor: str | None = None, limit: int = 100) -> Page[Payout]:
        def convert(p: Any) -> Payout:
            return Payout(
                gateway_payout_id=p["id"],
                amount_minor=int(p.get("amount")),
                currency=str(p.get("currency")).upper(),
                status=p.get("status") or "pending",
                arrival_at=_ts(p.get("arrival_date")),
                utr=p.get("trace_id", {}).get("value") if p.get("trace_id") else None,
            )

        return self._page(self.client.v1.payouts.list, cursor, limit, convert)

    def list_events(self, cursor: str | None = None, limit: int = 100) -> Page[GatewayEvent]:
        def convert(e: Any) -> GatewayEvent:
            obj = (e.get("data") or {}).get("object") or {}
            return GatewayEvent(
                event_id=e["id"],
                type=e.get("type"),
                created_at=_ts(e.get("created")),  # type: ignore[arg-type]
                object_id=obj.get("id"),
                data=dict(obj),
            )

        return self._page(self.client.v1.events.list, cursor, limit, convert)
