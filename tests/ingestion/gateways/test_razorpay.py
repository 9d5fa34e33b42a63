"""Razorpay adapter through the official SDK against a 127.0.0.1 server serving the reference mocks.

The server serves `../shared/reference/razorpay/*.json` as-is (malformed files included, which the
adapter must reject cleanly); collections honour `count`/`skip` and equality filters on fields.
"""

from __future__ import annotations

import http.server
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlparse

import pytest

from billing_jobs.payments.gateway import (
    Gateway,
    GatewayError,
    GatewayTimeout,
    NotFound,
    PaymentStatus,
)
from ingestion.gateways.razorpay import RazorpayConfig, RazorpayGateway, payment_result

REF: Path | None = None  # set by the `server` fixture, which skips when the data is absent


def _load(name: str) -> bytes:
    assert REF is not None
    return (REF / name).read_bytes()


def _recon() -> bytes:
    # No recon mock ships with the reference data: build Razorpay's documented combined-recon
    # rows from the reference payments and the reference settlement (fee includes GST).
    setl = json.loads(_load("fake_settlement.json"))
    pays = json.loads(_load("payment_collection.json"))["items"]
    rows = [
        {
            "entity_id": p["id"],
            "type": "payment",
            "debit": 0,
            "credit": p["amount"] - 12,
            "amount": p["amount"],
            "currency": p["currency"],
            "fee": 12,
            "tax": 2,
            "settlement_id": setl["id"],
            "settlement_utr": setl["utr"],
            "created_at": p["created_at"],
            "settled_at": setl["created_at"],
            "method": "upi",
        }
        for p in pays
    ]
    return json.dumps({"entity": "collection", "count": len(rows), "items": rows}).encode()


# (method, path regex) -> body producer (collections are filtered/sliced by the handler)
ROUTES: list[tuple[str, str, object]] = [
    (
        "POST",
        r"/v1/customers",
        lambda: json.dumps(json.loads(_load("customer_collection.json"))["items"][0]).encode(),
    ),
    ("GET", r"/v1/customers/[^/]+/tokens", lambda: _load("token_collection.json")),
    ("GET", r"/v1/customers/[^/]+/tokens/[^/]+", lambda: _load("fake_token.json")),
    ("POST", r"/v1/orders", lambda: _load("fake_order.json")),
    ("GET", r"/v1/orders", lambda: _load("order_collection.json")),
    ("GET", r"/v1/orders/fake_order_id/payments", lambda: _load("payment_collection.json")),
    ("GET", r"/v1/orders/[^/]+/payments", lambda: b'{"entity":"collection","count":0,"items":[]}'),
    ("POST", r"/v1/payments/create/recurring", lambda: _load("fake_create_recurring.json")),
    ("GET", r"/v1/payments", lambda: _load("payment_collection.json")),
    ("GET", r"/v1/payments/fake_payment_id", lambda: _load("fake_payment.json")),
    ("GET", r"/v1/payments/pay_29QQoUBi66xm2f", lambda: _load("fake_captured_payment.json")),
    ("POST", r"/v1/payments/[^/]+/refund", lambda: _load("fake_refund.json")),
    ("GET", r"/v1/refunds", lambda: _load("refund_collection.json")),
    ("GET", r"/v1/settlements/recon/combined", _recon),
    ("GET", r"/v1/settlements", lambda: _load("settlement_collection.json")),
    ("GET", r"/v1/disputes", lambda: _load("dispute_collection.json")),
]


class _Handler(http.server.BaseHTTPRequestHandler):
    requests: ClassVar[list[tuple[str, str, bytes]]] = []

    def _serve(self, method: str) -> None:
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.requests.append((method, self.path, body))
        for m, pattern, producer in ROUTES:
            if m == method and re.fullmatch(pattern, url.path):
                payload = producer()
                if method == "GET":
                    payload = _filter(payload, parse_qs(url.query))
                return self._send(200, payload)
        self._send(
            400,
            _load("bad_request_error.json").replace(
                b"The amount is invalid", b"The id provided does not exist"
            ),
        )

    def _send(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def do_DELETE(self):
        self._serve("DELETE")

    def log_message(self, *args):
        pass


def _filter(payload: bytes, query: dict[str, list[str]]) -> bytes:
    try:
        doc = json.loads(payload)
    except json.JSONDecodeError:
        return payload  # malformed reference files are served as they are
    if not isinstance(doc, dict) or doc.get("entity") != "collection":
        return payload
    items = doc["items"]
    for key, values in query.items():
        if key in ("count", "skip", "from", "to", "year", "month", "day"):
            continue
        items = [i for i in items if str(i.get(key)) == values[0]]
    if "from" in query:
        items = [i for i in items if int(i.get("created_at", 0)) >= int(query["from"][0])]
    skip = int(query.get("skip", ["0"])[0])
    count = int(query.get("count", ["10"])[0])
    items = items[skip : skip + count]
    return json.dumps({"entity": "collection", "count": len(items), "items": items}).encode()


@pytest.fixture(scope="module")
def server(razorpay_reference: Path) -> Iterator[str]:
    global REF
    REF = razorpay_reference
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()


@pytest.fixture()
def gw(server: str) -> RazorpayGateway:
    _Handler.requests.clear()
    return RazorpayGateway(RazorpayConfig("rzp_test_key", "secret", base_url=server))


def test_implements_port(gw):
    assert isinstance(gw, Gateway)


def test_config_from_env():
    with pytest.raises(GatewayError, match="RAZORPAY_KEY_ID"):
        RazorpayConfig.from_env({"RAZORPAY_KEY_ID": "k"})
    cfg = RazorpayConfig.from_env({"RAZORPAY_KEY_ID": "k", "RAZORPAY_KEY_SECRET": "s"})
    assert cfg.base_url is None


def test_create_customer(gw):
    c = gw.create_customer(email="gaurav.kumar@example.com", name="Gaurav Kumar")
    assert c.gateway_customer_id == "cust_1Aa00000000001"
    assert c.metadata["note_key_1"] == "September"


def test_recurring_charge_creates_order_with_receipt_and_is_pending(gw):
    res = gw.charge(
        "cust_1",
        "token_abc",
        49_900,
        "inr",
        "paysight-in_9-attempt-1",
        metadata={"invoice": "in_9"},
    )
    assert res.status is PaymentStatus.PENDING
    assert res.gateway_payment_id == "pay_Ia5nRCnwjqXGxv"
    assert res.currency == "INR"
    posts = {p: json.loads(b) for m, p, b in _Handler.requests if m == "POST"}
    order = posts["/v1/orders"]
    assert order["amount"] == 49_900 and order["receipt"] == "paysight-in_9-attempt-1"
    rec = posts["/v1/payments/create/recurring"]
    assert (
        rec["order_id"] == "fake_order_id"
        and rec["token"] == "token_abc"
        and rec["amount"] == 49_900
    )
    assert rec["notes"]["paysight_idempotency_key"] == "paysight-in_9-attempt-1"


def test_charge_with_a_known_receipt_does_not_charge_again(gw):
    # order_collection.json holds an order with receipt "12121" paid by the reference payments.
    res = gw.charge("cust_1", "token_abc", 500, "INR", "12121")
    assert res.gateway_payment_id in {"pay_29QQoUBi66xm2f", "pay_19btGlBig6xZ2f"}
    assert not any(p.startswith("/v1/payments/create") for _, p, _ in _Handler.requests)


def test_charge_rejects_amount_below_minimum(gw):
    with pytest.raises(GatewayError, match="100 paise"):
        gw.charge("cust_1", "token_abc", 99, "INR", "k")


def test_fetch_payment_and_not_found(gw):
    p = gw.fetch_payment("pay_29QQoUBi66xm2f")
    assert (p.status, p.amount_minor, p.currency) == (PaymentStatus.SUCCEEDED, 500, "INR")
    assert gw.fetch_payment("fake_payment_id").status is PaymentStatus.PENDING
    with pytest.raises(NotFound):
        gw.fetch_payment("pay_missing")


def test_list_payments_pages_with_cursor(gw):
    first = gw.list_payments(limit=1)
    assert len(first.items) == 1
    second = gw.list_payments(cursor=first.next_cursor, limit=1)
    assert len(second.items) == 1
    assert first.items[0].gateway_payment_id != second.items[0].gateway_payment_id
    assert gw.list_payments(cursor=second.next_cursor).items == []


def test_partial_refund_in_paise(gw):
    r = gw.refund("pay_FIKOnlyii5QGNx", 300_100)
    assert (r.amount_minor, r.currency, r.status) == (300_100, "INR", "processed")
    sent = next(json.loads(b) for m, p, b in _Handler.requests if p.endswith("/refund"))
    assert sent == {"amount": 300_100}
    with pytest.raises(GatewayError):
        gw.refund("pay_x", -5)


def test_refunds_disputes_settlements(gw):
    refunds = gw.list_refunds().items
    assert {r.gateway_refund_id for r in refunds} == {"rfnd_AABBdHIieexn5c", "rfnd_19btGlBig6xZ2f"}
    disputes = gw.list_disputes().items
    assert disputes and all(d.currency == "INR" for d in disputes)
    payouts = gw.list_payouts().items
    assert payouts[0].gateway_payout_id == "setl_4xbSwsPABDJ8oK"  # oldest first
    big = next(p for p in payouts if p.gateway_payout_id == "setl_7IZKKI4Pnt2kEe")
    assert (big.amount_minor, big.fee_minor, big.fee_tax_minor, big.utr) == (
        50_000,
        123,
        12,
        "RZRP173069230703",
    )


def test_settlement_recon_splits_fee_and_gst(gw):
    rows = gw.settlement_recon(2017, 11, 2)
    assert len(rows) == 2
    assert all(r.fee_minor == 10 and r.fee_tax_minor == 2 for r in rows)
    assert all(r.net_minor == r.amount_minor - 12 for r in rows)


def test_malformed_token_json_is_a_clear_error(gw):
    # token_collection.json in the reference data is not valid JSON.
    with pytest.raises(GatewayError, match="not valid JSON"):
        gw.list_payment_methods("cust_1")


def test_unsupported_listings_say_so(gw):
    with pytest.raises(GatewayError, match="events arrive as webhooks"):
        gw.list_events()
    with pytest.raises(GatewayError, match="settlement_recon"):
        gw.list_balance_transactions()


def test_unreachable_server_is_unknown_outcome():
    dead = RazorpayGateway(
        RazorpayConfig("k", "s", base_url="http://127.0.0.1:9", timeout_seconds=1)
    )
    with pytest.raises(GatewayTimeout):
        dead.fetch_payment("pay_x")


@pytest.mark.parametrize(
    ("reason", "method"),
    [
        ("insufficient_funds", "card"),
        ("payment_declined", "netbanking"),
        ("mandate_revoked", "upi"),
    ],
)
def test_failed_payment_maps_error_reason(server, reason, method):
    p = json.loads(_load("fake_payment.json"))
    p.update(status="failed", error_code="BAD_REQUEST_ERROR", error_reason=reason, method=method)
    res = payment_result(p)
    assert res.status is PaymentStatus.FAILED and res.decline_code == reason
    assert res.metadata["method"] == method


def test_unknown_status_rejected(server):
    p = json.loads(_load("fake_payment.json"))
    p["status"] = "teleported"
    with pytest.raises(GatewayError, match="unknown status"):
        payment_result(p)
