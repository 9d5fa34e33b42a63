"""Network retries of both adapters against a real HTTP server on 127.0.0.1 that fails on purpose:
reads retried through 5xx/429 with backoff and `Retry-After`, writes never resent after a 5xx."""

from __future__ import annotations

import time

import pytest
from urllib3.util.retry import RequestHistory

from billing_jobs.payments.gateway import GatewayError
from ingestion.gateways.razorpay import RazorpayConfig, RazorpayGateway
from ingestion.gateways.retry import RetryPolicy, retry_strategy
from ingestion.gateways.stripe import StripeConfig, StripeGateway
from tests.ingestion.gateway_worlds import T0, World, serving

FAST = RetryPolicy(attempts=2, backoff=0.01, jitter=0.01, max_delay=2)
CUSTOMER = {"id": "cus_r1", "object": "customer", "created": T0, "currency": "inr"}
PAYMENT = {"id": "pay_r1", "entity": "payment", "amount": 10_000, "currency": "INR",
           "status": "captured", "method": "upi", "created_at": T0}  # fmt: skip


def _stripe(url: str, policy: RetryPolicy = FAST) -> StripeGateway:
    return StripeGateway(StripeConfig("sk_test_retry", api_base=url, retry=policy))


def _calls(server, method: str) -> int:
    return sum(1 for m, _, _ in server.requests if m == method)


def test_reads_are_retried_through_5xx_and_429_honouring_retry_after():
    with serving(World(objects={"customers": [CUSTOMER]}), "stripe") as server:
        server.faults = [(503, {}), (429, {"Retry-After": "1"})]
        started = time.monotonic()
        page = _stripe(server.url).list_objects("customers")
        elapsed = time.monotonic() - started
    assert [o["id"] for o in page.items] == ["cus_r1"]
    assert _calls(server, "GET") == 3
    assert elapsed >= 1.0  # the server asked for a second; nothing sooner


def test_a_write_is_not_resent_after_a_5xx_but_is_after_a_429():
    world = World(objects={"customers": [CUSTOMER]})
    with serving(world, "stripe") as server:
        server.faults = [(503, {})]
        with pytest.raises(GatewayError, match="try again"):
            _stripe(server.url).create_customer(email="a@example.in")
        assert _calls(server, "POST") == 1  # outcome unknown: the caller asks, never resends
        server.faults = [(429, {"Retry-After": "0"})]
        created = _stripe(server.url).create_customer(email="a@example.in")
        assert created.gateway_customer_id == "cus_r1"
        assert _calls(server, "POST") == 3  # the 429 (not acted on) and its retry


def test_retries_give_up_after_the_policy_and_say_why():
    with serving(World(objects={"customers": [CUSTOMER]}), "stripe") as server:
        server.faults = [(502, {})] * 5
        with pytest.raises(GatewayError, match="try again") as err:
            _stripe(server.url).list_objects("customers")
    assert err.value.status == 502
    assert _calls(server, "GET") == 1 + FAST.attempts


def test_a_hostile_retry_after_cannot_stall_or_crash_a_run():
    with serving(World(objects={"customers": [CUSTOMER]}), "stripe") as server:
        server.faults = [(503, {"Retry-After": "not-a-number"}), (429, {"Retry-After": "86400"})]
        started = time.monotonic()
        page = _stripe(server.url, RetryPolicy(attempts=2, backoff=0.01, max_delay=1)).list_objects(
            "customers"
        )
    assert len(page.items) == 1
    assert time.monotonic() - started < 5  # a day's Retry-After is capped at max_delay


def test_razorpay_reads_retry_and_writes_do_not():
    world = World(objects={"payments": [PAYMENT], "customers": []})
    with serving(world, "razorpay") as server:
        gw = RazorpayGateway(RazorpayConfig("rzp_test", "secret", base_url=server.url, retry=FAST))
        server.faults = [(502, {}), (503, {"Retry-After": "0"})]
        page = gw.list_objects("payments")
        assert [p["id"] for p in page.items] == ["pay_r1"]
        assert _calls(server, "GET") == 3
        server.faults = [(500, {})]
        with pytest.raises(GatewayError):
            gw.create_customer(email="a@example.in")
        assert _calls(server, "POST") == 1


def test_backoff_grows_with_jitter_inside_its_bounds():
    policy = RetryPolicy(attempts=5, backoff=0.5, jitter=0.25, max_delay=3)
    strategy = retry_strategy(policy)
    failure = RequestHistory("GET", "/v1/x", None, 503, None)
    for tries, low in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0)):
        waits = {strategy.new(history=(failure,) * tries).get_backoff_time() for _ in range(20)}
        assert all(low <= w <= min(low + 0.25, 3.0) for w in waits), (tries, waits)
        if low + 0.25 <= 3.0:
            assert len(waits) > 1  # jittered, not a fixed schedule


@pytest.mark.parametrize("bad", [{"attempts": -1}, {"backoff": -1.0}, {"max_delay": 0}])
def test_a_bad_policy_is_refused(bad):
    with pytest.raises(ValueError, match="retry"):
        RetryPolicy(**bad)
