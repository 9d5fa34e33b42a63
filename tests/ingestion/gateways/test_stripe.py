"""Stripe adapter against a real localstripe server on 127.0.0.1 (no network beyond loopback)."""

from __future__ import annotations

import http.server
import json
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import ClassVar

import httpx
import pytest
import stripe

from billing_jobs.payments.gateway import (
    Gateway,
    GatewayError,
    GatewayTimeout,
    NotFound,
    PaymentStatus,
)
from ingestion.gateways.retry import RetryPolicy
from ingestion.gateways.stripe import StripeConfig, StripeGateway
from ingestion.webhooks.signatures import SignatureError

# Stripe's published test card numbers; they only ever go to the local test server.
OK_CARD = "4242424242424242"
DECLINE_ON_CHARGE = "4000000000000341"


@pytest.fixture(scope="module")
def gw(localstripe_url: str) -> StripeGateway:
    return StripeGateway(StripeConfig(api_key="sk_test_paysight", api_base=localstripe_url))


def _token(gw: StripeGateway, number: str) -> str:
    pm = gw.client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": number, "exp_month": 12, "exp_year": 2031, "cvc": "123"},
        }
    )
    return pm.id


def test_implements_port(gw):
    assert isinstance(gw, Gateway)


def test_config_from_env_honours_api_base():
    cfg = StripeConfig.from_env({"STRIPE_API_KEY": "sk_x", "STRIPE_API_BASE": "http://127.0.0.1:1"})
    assert cfg.api_base == "http://127.0.0.1:1"
    with pytest.raises(GatewayError, match="STRIPE_API_KEY"):
        StripeConfig.from_env({})


def test_successful_off_session_charge_and_partial_refund(gw):
    cus = gw.create_customer(email="asha@example.in", metadata={"paysight_customer": "c1"})
    pm = gw.attach_payment_method(cus.gateway_customer_id, _token(gw, OK_CARD))
    assert pm.last4 == "4242" and pm.customer_id == cus.gateway_customer_id
    assert [m.token for m in gw.list_payment_methods(cus.gateway_customer_id)] == [pm.token]

    res = gw.charge(cus.gateway_customer_id, pm.token, 49_900, "INR", "paysight-in_1-attempt-1")
    assert res.status is PaymentStatus.SUCCEEDED
    assert (res.amount_minor, res.currency) == (49_900, "INR")
    assert res.idempotency_key == "paysight-in_1-attempt-1"
    assert gw.fetch_payment(res.gateway_payment_id) == res
    assert gw.find_payment("paysight-in_1-attempt-1").gateway_payment_id == res.gateway_payment_id
    assert gw.find_payment("paysight-nope-attempt-1") is None

    refund = gw.refund(res.gateway_payment_id, 10_000)
    assert (refund.amount_minor, refund.currency, refund.status) == (10_000, "INR", "succeeded")
    assert refund.gateway_payment_id == res.gateway_payment_id
    with pytest.raises(GatewayError):
        gw.refund(res.gateway_payment_id, 0)

    fees = gw.list_balance_transactions().items
    kinds = {(t.kind, t.amount_minor) for t in fees}
    assert ("charge", 49_900) in kinds and ("refund", -10_000) in kinds

    gw.detach_payment_method(pm.token)
    assert gw.list_payment_methods(cus.gateway_customer_id) == []


def test_card_that_attaches_then_declines_on_charge(gw):
    cus = gw.create_customer(email="ravi@example.in")
    pm = gw.attach_payment_method(cus.gateway_customer_id, _token(gw, DECLINE_ON_CHARGE))
    res = gw.charge(cus.gateway_customer_id, pm.token, 149_900, "INR", "paysight-in_2-attempt-1")
    assert res.status is PaymentStatus.FAILED
    assert res.decline_code == "card_declined"
    assert res.gateway_payment_id  # the failed charge is identifiable


def test_card_needing_3ds_requires_action(gw):
    cus = gw.create_customer(email="meera@example.in")
    pm = gw.attach_payment_method(cus.gateway_customer_id, _token(gw, "4000002500003155"))
    res = gw.charge(cus.gateway_customer_id, pm.token, 2_000_000, "INR", "paysight-in_3-attempt-1")
    assert res.status is PaymentStatus.REQUIRES_ACTION and not res.succeeded


def test_unknown_objects_and_bad_cursor(gw):
    with pytest.raises(NotFound):
        gw.fetch_payment("pi_doesnotexist")
    with pytest.raises(GatewayError, match="malformed cursor"):
        gw.list_payments(cursor="yesterday")


def test_unreachable_server_is_an_unknown_outcome():
    dead = StripeGateway(
        StripeConfig(
            api_key="sk_x",
            api_base="http://127.0.0.1:9",
            timeout_seconds=1,
            retry=RetryPolicy(attempts=1, backoff=0.01, jitter=0),
        )
    )
    with pytest.raises(GatewayTimeout):
        dead.charge("cus_x", "pm_x", 100, "INR", "k-1")


def test_pagination_over_more_than_100_payments(gw):
    cus = gw.create_customer(email="bulk@example.in")
    pm = gw.attach_payment_method(cus.gateway_customer_id, _token(gw, OK_CARD))
    before = {p.gateway_payment_id for p in _drain(gw.list_payments, 1000)}
    for i in range(120):
        gw.charge(cus.gateway_customer_id, pm.token, 100 + i, "INR", f"paysight-bulk-{i}-attempt-1")
    pages = 0
    seen: list[str] = []
    cursor = None
    while True:
        page = gw.list_payments(cursor=cursor, limit=50)
        if not page.items:
            break
        pages += 1
        seen += [p.gateway_payment_id for p in page.items]
        cursor = page.next_cursor
    assert len(seen) == len(set(seen))  # no duplicates across pages
    new = set(seen) - before
    assert len(new) == 120
    assert pages >= 3
    # polling again from the final cursor yields nothing new
    assert gw.list_payments(cursor=cursor).items == []


def _drain(fn, limit):
    out, cursor = [], None
    while True:
        page = fn(cursor=cursor, limit=limit)
        if not page.items:
            return out
        out += page.items
        cursor = page.next_cursor


def test_events_since_cursor(gw):
    first = gw.list_events(limit=1000)
    cus = gw.create_customer(email="events@example.in")
    later = gw.list_events(cursor=first.next_cursor)
    assert any(
        e.type == "customer.created" and e.object_id == cus.gateway_customer_id for e in later.items
    )
    assert {e.event_id for e in later.items}.isdisjoint({e.event_id for e in first.items})


def test_disputes_endpoint_missing_in_localstripe_is_reported(gw):
    # localstripe has no /v1/disputes: the adapter surfaces it as NotFound, not as empty data.
    with pytest.raises(NotFound):
        gw.list_disputes()


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict, bytes]]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def _ours() -> list[tuple[dict, bytes]]:
    # Events from earlier tests may be delivered too (localstripe sends after a 1 s delay).
    return [(h, b) for h, b in _Receiver.received if b"hook@example.in" in b]


def test_webhook_signature_from_localstripe_verifies(gw, localstripe_url):
    server = http.server.HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    secret = "whsec_paysight_test"
    try:
        r = httpx.post(
            f"{localstripe_url}/_config/webhooks/paysight",
            data={
                "url": f"http://127.0.0.1:{server.server_port}/webhooks/stripe",
                "secret": secret,
            },
            headers={"Authorization": "Bearer sk_test_paysight"},
        )
        assert r.status_code == 200, r.text
        gw.create_customer(email="hook@example.in")
        deadline = time.monotonic() + 10
        while not _ours() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _ours(), "localstripe delivered no webhook for our customer"
        headers, body = _ours()[0]
        sig = headers["Stripe-Signature"]
        event = stripe.Webhook.construct_event(body, sig, secret)  # the SDK's verifier
        assert event["type"] == "customer.created"
        adapter = StripeGateway(replace(gw.config, webhook_secret=secret))
        assert adapter.verify_webhook(body, sig, datetime.now(UTC))["type"] == "customer.created"
        with pytest.raises(SignatureError):
            adapter.verify_webhook(body + b" ", sig, datetime.now(UTC))
        other = StripeGateway(replace(gw.config, webhook_secret="whsec_other_secret_value"))
        with pytest.raises(SignatureError):
            other.verify_webhook(body, sig, datetime.now(UTC))
        assert json.loads(body)["data"]["object"]["email"] == "hook@example.in"
    finally:
        server.shutdown()
