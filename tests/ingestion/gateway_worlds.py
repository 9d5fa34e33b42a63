"""Gateway worlds built from the gateways' own reference objects, served over real HTTP on
127.0.0.1 the way the APIs serve them, for the official SDKs to read.

Stripe: every object is a copy of its `fixtures3.json` fixture with ids, amounts, methods and
outcomes set; lists are newest first with `starting_after`, `created[gte]` and `expand[]`.
Razorpay: copies of the reference payment and customer mocks; collections honour count/skip/from.
A `faults` queue on the server answers the next requests with an error status (and headers)
before serving normally, for the retry tests.
"""

from __future__ import annotations

import copy
import http.server
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

T0 = 1_767_225_600  # 2026-01-01 00:00 UTC
DECLINES = ("insufficient_funds", "do_not_honor", "expired_card", "lost_card", "generic_decline")
CARDS = (("visa", "IN", "HDFC Bank"), ("mastercard", "IN", "ICICI Bank"), ("rupay", "IN", "SBI"),
         ("visa", "US", "Chase"))  # fmt: skip
UPI_HANDLES = ("okhdfcbank", "okicici", "ybl", "paytm")


@dataclass
class World:
    """Objects by listing name, plus what the tests expect of them."""

    objects: dict[str, list[dict]] = field(default_factory=dict)
    expected: dict[str, Any] = field(default_factory=dict)


def _fee(amount: int) -> tuple[int, int]:
    """2% fee and 18% GST on it, in paise (integers only)."""
    fee = amount * 2 // 100
    return fee, fee * 18 // 100


def stripe_world(fixtures: dict[str, dict], payments: int = 300) -> World:
    """`payments` PaymentIntents over 30 customers: every third UPI, every tenth other one an
    Amazon Pay wallet, the rest cards; every seventh (from the second) failed."""
    customers, intents, charges, txns, events = [], [], [], [], []
    for n in range(30):
        c = copy.deepcopy(fixtures["customer"])
        c.update(id=f"cus_w{n:03d}", created=T0 + n, email=f"buyer{n}@example.in",
                 currency="inr", metadata={"paysight_customer_id": f"c{n}"} if n % 2 else {})  # fmt: skip
        customers.append(c)
        events.append(_stripe_event(fixtures, f"evt_c{n:03d}", "customer.created", c, T0 + n))
    methods: dict[str, int] = {}
    failed = {}
    for i in range(payments):
        created = T0 + 3600 + i * 600
        cust = customers[i % 30]
        amount = 49_900 + (i % 5) * 25_000
        method = "upi" if i % 3 == 0 else ("amazon_pay" if i % 10 == 1 else "card")
        methods[method] = methods.get(method, 0) + 1
        fails = i % 7 == 1
        pi_id, ch_id, txn_id = f"pi_w{i:04d}", f"ch_w{i:04d}", f"txn_w{i:04d}"
        ch = copy.deepcopy(fixtures["charge"])
        ch.update(id=ch_id, amount=amount, amount_captured=0 if fails else amount, created=created,
                  currency="inr", customer=cust["id"], payment_intent=pi_id,
                  status="failed" if fails else "succeeded", paid=not fails,
                  captured=not fails, balance_transaction=None if fails else txn_id,
                  payment_method=f"pm_w{i:04d}", payment_method_details=_details(method, i))  # fmt: skip
        pi = copy.deepcopy(fixtures["payment_intent"])
        pi.update(id=pi_id, amount=amount, created=created, currency="inr", customer=cust["id"],
                  latest_charge=ch_id, payment_method=f"pm_w{i:04d}", canceled_at=None,
                  payment_method_types=[method], last_payment_error=None,
                  metadata={"invoice_id": f"in_{i:04d}"} if i % 2 else {})  # fmt: skip
        if fails:
            code = (
                DECLINES[i % len(DECLINES)]
                if method == "card"
                else "payment_method_provider_decline"
            )
            failed[pi_id] = code
            if method == "card":
                ch.update(failure_code="card_declined", failure_message="Your card was declined.")
                ch["outcome"] = {**ch["outcome"], "reason": code, "type": "issuer_declined"}
                pi["last_payment_error"] = {"type": "card_error", "code": "card_declined",
                                            "decline_code": code, "charge": ch_id}  # fmt: skip
            else:
                ch.update(failure_code=code, failure_message="The provider declined.")
                pi["last_payment_error"] = {"type": "invalid_request_error", "code": code}
            pi.update(status="requires_payment_method", amount_received=0)
        else:
            pi.update(status="succeeded", amount_received=amount)
            fee, tax = _fee(amount)
            bt = copy.deepcopy(fixtures["balance_transaction"])
            bt.update(id=txn_id, amount=amount, created=created, available_on=created + 2 * 86400,
                      currency="inr", fee=fee + tax, net=amount - fee - tax, source=ch_id,
                      type="charge", reporting_category="charge",
                      fee_details=[{"amount": fee, "currency": "inr", "type": "stripe_fee",
                                    "description": "Stripe processing fees", "application": None},
                                   {"amount": tax, "currency": "inr", "type": "tax",
                                    "description": "GST", "application": None}])  # fmt: skip
            txns.append(bt)
        intents.append(pi)
        charges.append(ch)
        kind = "payment_intent.payment_failed" if fails else "payment_intent.succeeded"
        events.append(_stripe_event(fixtures, f"evt_p{i:04d}", kind, pi, created + 5))
    world = World(
        objects={
            "customers": customers,
            "payment_intents": intents,
            "charges": charges,
            "balance_transactions": txns,
            "events": events,
            "refunds": [],
            "disputes": [],
            "payouts": [],
        },
        expected={
            "methods": {
                "upi": methods.get("upi", 0),
                "card": methods.get("card", 0),
                "wallet": methods.get("amazon_pay", 0),
            },
            "failed": failed,
            "payments": payments,
        },
    )
    return world


def _details(method: str, i: int) -> dict:
    if method == "upi":
        return {"type": "upi", "upi": {"vpa": f"buyer{i}@{UPI_HANDLES[i % len(UPI_HANDLES)]}"}}
    if method == "amazon_pay":
        return {"type": "amazon_pay", "amazon_pay": {}}
    brand, country, issuer = CARDS[i % len(CARDS)]
    return {"type": "card", "card": {"brand": brand, "network": brand, "country": country,
                                     "issuer": issuer, "funding": "credit", "last4": "4242",
                                     "exp_month": 12, "exp_year": 2031}}  # fmt: skip


def _stripe_event(fixtures: dict, eid: str, kind: str, obj: dict, created: int) -> dict:
    e = copy.deepcopy(fixtures["event"])
    e.update(id=eid, type=kind, created=created, api_version="2025-06-30.basil",
             data={"object": copy.deepcopy(obj)})  # fmt: skip
    return e


def razorpay_world(reference: Path, payments: int = 60) -> World:
    """Payments copied from the reference payment mock: a quarter each card, UPI, netbanking and
    wallet; every fifth failed with Razorpay's error fields; fee and GST on captured ones."""
    base = json.loads((reference / "fake_payment.json").read_text())
    cust_base = json.loads((reference / "customer_collection.json").read_text())["items"][0]
    customers, items, failed = [], [], {}
    methods: dict[str, int] = {}
    for n in range(10):
        c = copy.deepcopy(cust_base)
        c.update(id=f"cust_w{n:03d}", created_at=T0 + n, email=f"buyer{n}@example.in",
                 notes={"paysight_customer_id": f"c{n}"} if n % 2 else [])  # fmt: skip
        customers.append(c)
    for i in range(payments):
        method = ("card", "upi", "netbanking", "wallet")[i % 4]
        methods[method] = methods.get(method, 0) + 1
        p = copy.deepcopy(base)
        amount = 29_900 + (i % 3) * 10_000
        fails = i % 5 == 2
        fee, tax = _fee(amount)
        p.update(id=f"pay_w{i:04d}", entity="payment", amount=amount, currency="INR",
                 created_at=T0 + 3600 + i * 600, method=method, customer_id=customers[i % 10]["id"],
                 status="failed" if fails else "captured", captured=not fails,
                 fee=None if fails else fee + tax, tax=None if fails else tax,
                 notes={"invoice_id": f"in_{i:04d}"}, card=None, bank=None, wallet=None, vpa=None,
                 error_code=None, error_reason=None, error_description=None)  # fmt: skip
        if method == "card":
            p.update(card_id=f"card_w{i:04d}", card={"id": f"card_w{i:04d}", "entity": "card",
                     "network": "RuPay" if i % 8 == 0 else "Visa", "issuer": "HDFC",
                     "country": "IN", "type": "credit", "last4": "1111"})  # fmt: skip
        elif method == "upi":
            p["vpa"] = f"buyer{i}@okaxis"
        elif method == "netbanking":
            p["bank"] = "SBIN"
        else:
            p["wallet"] = "paytm"
        if fails:
            failed[p["id"]] = "payment_declined" if i % 2 else "insufficient_balance"
            p.update(error_code="BAD_REQUEST_ERROR", error_reason=failed[p["id"]],
                     error_description="Payment failed", error_source="bank")  # fmt: skip
        items.append(p)
    return World(
        objects={"payments": items, "customers": customers},
        expected={"methods": methods, "failed": failed, "payments": payments},
    )


class _Handler(http.server.BaseHTTPRequestHandler):
    server: WorldServer

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _send(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        url = urlparse(self.path)
        self.server.requests.append((method, url.path, dict(self.headers)))
        if self.server.faults:
            status, headers = self.server.faults.pop(0)
            return self._send(status, {"error": {"type": "api_error", "code": "SERVER_ERROR",
                                                 "message": "try again",
                                                 "description": "try again"}}, headers)  # fmt: skip
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        status, body = self.server.route(method, url.path, query)
        self._send(status, body)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")


class WorldServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, world: World, flavour: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.world, self.flavour = world, flavour
        self.requests: list[tuple[str, str, dict]] = []
        self.faults: list[tuple[int, dict[str, str]]] = []
        self.posts: list[dict] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def route(self, method: str, path: str, query: dict[str, str]) -> tuple[int, object]:
        parts = path.strip("/").split("/")
        if self.flavour == "stripe":
            return self._stripe(method, parts, query)
        return self._razorpay(method, parts, query)

    def _stripe(self, method: str, parts: list[str], query: dict) -> tuple[int, object]:
        if method == "POST" and parts == ["v1", "customers"]:
            return 200, self.world.objects["customers"][0]
        if method != "GET" or len(parts) != 2 or parts[1] not in self.world.objects:
            return 404, {"error": {"type": "invalid_request_error",
                                   "message": f"Unrecognized request URL ({'/'.join(parts)})"}}  # fmt: skip
        objs = sorted(self.world.objects[parts[1]], key=lambda o: (o["created"], o["id"]),
                      reverse=True)  # fmt: skip
        if "created[gte]" in query:
            objs = [o for o in objs if o["created"] >= int(query["created[gte]"])]
        if "starting_after" in query:
            ids = [o["id"] for o in objs]
            objs = objs[ids.index(query["starting_after"]) + 1 :]
        limit = int(query.get("limit", 10))
        page = [copy.deepcopy(o) for o in objs[:limit]]
        expand = {v for k, v in query.items() if k.startswith("expand[")}
        by_id = {o["id"]: o for k in ("charges", "balance_transactions")
                 for o in self.world.objects.get(k, [])}  # fmt: skip
        for o in page:
            if "data.latest_charge" in expand and str(o.get("latest_charge")) in by_id:
                o["latest_charge"] = copy.deepcopy(by_id[o["latest_charge"]])
                bt = o["latest_charge"].get("balance_transaction")
                if "data.latest_charge.balance_transaction" in expand and str(bt) in by_id:
                    o["latest_charge"]["balance_transaction"] = copy.deepcopy(by_id[bt])
        return 200, {"object": "list", "data": page, "has_more": len(objs) > limit,
                     "url": "/" + "/".join(parts)}  # fmt: skip

    def _razorpay(self, method: str, parts: list[str], query: dict) -> tuple[int, object]:
        if method != "GET" or len(parts) != 2 or parts[1] not in self.world.objects:
            return 400, {"error": {"code": "BAD_REQUEST_ERROR",
                                   "description": "The requested URL was not found"}}  # fmt: skip
        objs = sorted(self.world.objects[parts[1]], key=lambda o: o["created_at"], reverse=True)
        if "from" in query:
            objs = [o for o in objs if o["created_at"] >= int(query["from"])]
        skip, count = int(query.get("skip", 0)), int(query.get("count", 10))
        page = objs[skip : skip + count]
        return 200, {"entity": "collection", "count": len(page), "items": page}


@contextmanager
def serving(world: World, flavour: str) -> Iterator[WorldServer]:
    server = WorldServer(world, flavour)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
