"""The simulated gateway: unchanged history output, and the port with SQLite-backed state."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from billing_jobs.payments.gateway import (
    Gateway,
    GatewayError,
    GatewayTimeout,
    NotFound,
    PaymentStatus,
)
from ingestion.webhooks.signatures import verify_stripe
from simulation.gateway import behaviour as world
from simulation.gateway.port import DISPUTE_RATE, _sid, fee_and_tax, settlement_time
from simulation.gateway.simulated import SimulatedGateway

T0 = datetime(2026, 3, 12, 10, 0, tzinfo=UTC)  # mid-month: no salary-day boost
CARD = "tok_card_hdfc_visa_4242_12_2030"


def gw(**kw) -> SimulatedGateway:
    return SimulatedGateway(11, 10, **kw)


def customer(g: SimulatedGateway, token: str = CARD) -> tuple[str, str]:
    """A customer with `token` attached: (customer id, payment method id)."""
    cid = g.create_customer(email="a@example.in", now=T0).gateway_customer_id
    return cid, g.attach_payment_method(cid, token).token


def test_implements_port():
    assert isinstance(gw(), Gateway)


def test_time_is_required():
    g = gw()
    with pytest.raises(GatewayError, match="needs the time"):
        g.create_customer()
    with pytest.raises(GatewayError, match="timezone-aware"):
        g.create_customer(now=datetime(2026, 1, 1))
    clocked = gw(clock=lambda: T0)
    assert clocked.create_customer().gateway_customer_id.startswith("cus_")


@pytest.mark.parametrize(
    "token",
    [
        "tok_card_hdfc",
        "tok_card_nobank_visa_4242_12_2030",
        "tok_upi_unknownhandle",
        "tok_crypto_x",
        "4242424242424242",
    ],
)
def test_bad_tokens_rejected(token):
    g = gw()
    cid = g.create_customer(now=T0).gateway_customer_id
    with pytest.raises(GatewayError):
        g.attach_payment_method(cid, token)


def test_methods_and_tokens_only():
    g = gw()
    cid, pm = customer(g)
    g.attach_payment_method(cid, "tok_upi_mandate_oksbi")
    kinds = {m.kind: m for m in g.list_payment_methods(cid)}
    assert set(kinds) == {"card", "upi_mandate"}
    assert (kinds["card"].last4, kinds["card"].exp_year, kinds["card"].brand) == (
        "4242",
        2030,
        "visa",
    )
    assert pm.startswith("pm_") and CARD not in {m.token for m in kinds.values()}
    g.detach_payment_method(pm)
    assert [m.kind for m in g.list_payment_methods(cid)] == ["upi_mandate"]
    with pytest.raises(NotFound):
        g.detach_payment_method(pm)


def test_deterministic_and_idempotent():
    outcomes = []
    for _ in range(2):
        g = gw()
        cid, pm = customer(g)
        outcomes.append([g.charge(cid, pm, 49_900, "INR", f"k-{i}", now=T0) for i in range(30)])
    assert outcomes[0] == outcomes[1]
    statuses = {r.status for r in outcomes[0]}
    assert statuses == {PaymentStatus.SUCCEEDED, PaymentStatus.FAILED} or statuses == {
        PaymentStatus.SUCCEEDED
    }

    g = gw()
    cid, pm = customer(g)
    first = g.charge(cid, pm, 49_900, "INR", "same-key", metadata={"invoice_id": "in_1"}, now=T0)
    again = g.charge(
        cid,
        pm,
        49_900,
        "INR",
        "same-key",
        metadata={"invoice_id": "in_1"},
        now=T0 + timedelta(hours=1),
    )
    assert again == first
    assert len(g.list_payments().items) == 1
    with pytest.raises(GatewayError, match="different parameters"):
        g.charge(cid, pm, 50_000, "INR", "same-key", metadata={"invoice_id": "in_1"}, now=T0)
    with pytest.raises(GatewayError):
        g.charge(cid, pm, 0, "INR", "k0", now=T0)
    with pytest.raises(GatewayError, match="not attached"):
        g.charge(cid, "pm_someone_elses", 100, "INR", "k1", now=T0)


def test_declines_use_real_codes_and_expired_cards_fail():
    g = gw()
    cid, pm = customer(g, "tok_card_sbi_visa_0005_01_2026")
    r = g.charge(cid, pm, 49_900, "INR", "exp", now=T0)
    assert (r.status, r.decline_code) == (PaymentStatus.FAILED, "expired_card")
    g2 = gw()
    cid2, pm2 = customer(g2, "tok_card_sbi_visa_4242_12_2030")
    codes = {
        g2.charge(cid2, pm2, 49_900, "INR", f"d{i}", now=T0).decline_code for i in range(300)
    } - {None}
    assert codes and codes <= {c for c, _ in world.CODE_MIX["card"]}


def test_mandate_above_15000_needs_authentication():
    g = gw()
    cid, pm = customer(g, "tok_upi_mandate_okicici")
    r = g.charge(cid, pm, 1_500_001, "INR", "big", now=T0)
    assert (r.status, r.decline_code) == (PaymentStatus.REQUIRES_ACTION, "authentication_required")


def test_upi_stays_pending_then_resolves_with_events():
    g = gw()
    cid, pm = customer(g, "tok_upi_okhdfcbank")
    r = g.charge(cid, pm, 29_900, "INR", "upi-1", now=T0)
    assert r.status is PaymentStatus.PENDING and r.decline_code is None
    later = g.fetch_payment(r.gateway_payment_id, now=T0 + timedelta(days=2))
    assert later.status in (PaymentStatus.SUCCEEDED, PaymentStatus.FAILED)
    types = [e.type for e in g.list_events().items if e.object_id == r.gateway_payment_id]
    assert types[0] == "payment_intent.processing" and types[-1].startswith("payment_intent.")
    assert len(types) == 2


def test_fees_gst_and_t_plus_2_payouts():
    g = gw()
    cid, pm = customer(g)
    ok = [
        r
        for r in (g.charge(cid, pm, 100_000, "INR", f"f{i}", now=T0) for i in range(10))
        if r.succeeded
    ]
    assert ok
    fee, tax = fee_and_tax(100_000, "card")
    assert (fee, tax) == (2_000, 360)
    txns = g.list_balance_transactions().items
    assert all(
        (t.fee_minor, t.fee_tax_minor, t.net_minor) == (fee, tax, 100_000 - fee - tax) for t in txns
    )
    assert g.list_payouts().items == []  # nothing settles before T+2
    g.advance(now=settlement_time(T0))
    payouts = g.list_payouts().items
    assert len(payouts) == 1
    assert payouts[0].amount_minor == len(ok) * (100_000 - fee - tax)
    assert payouts[0].fee_tax_minor == len(ok) * tax
    assert (
        settlement_time(datetime(2026, 3, 13, 10, tzinfo=UTC)).date().isoformat() == "2026-03-17"
    )  # Fri -> Tue


def test_refunds_partial_full_and_too_much():
    g = gw()
    cid, pm = customer(g)
    ok = next(
        r
        for r in (g.charge(cid, pm, 10_000, "INR", f"r{i}", now=T0) for i in range(20))
        if r.succeeded
    )
    part = g.refund(ok.gateway_payment_id, 4_000, idempotency_key="rf-1", now=T0)
    assert g.refund(ok.gateway_payment_id, 4_000, idempotency_key="rf-1", now=T0) == part
    with pytest.raises(GatewayError, match="exceeds"):
        g.refund(ok.gateway_payment_id, 6_001, now=T0)
    rest = g.refund(ok.gateway_payment_id, now=T0)
    assert rest.amount_minor == 6_000
    assert [r.amount_minor for r in g.list_refunds().items] == [4_000, 6_000]


def test_disputes_arrive_later():
    g = gw()
    cid, pm = customer(g)
    # find idempotency keys whose payment the world disputes, using the world's own draw
    keys = [
        k
        for k in (f"dk{i}" for i in range(3000))
        if world.uniform(11, "dispute", _sid("pi", 11, k)) < DISPUTE_RATE
    ]
    results = [g.charge(cid, pm, 20_000, "INR", k, now=T0) for k in keys[:6]]
    disputed = {r.gateway_payment_id for r in results if r.succeeded}
    assert disputed
    assert g.list_disputes().items == []
    g.advance(now=T0 + timedelta(days=45))
    got = g.list_disputes().items
    assert {d.gateway_payment_id for d in got} == disputed
    assert any(
        t.kind == "dispute" and t.amount_minor == -20_000
        for t in g.list_balance_transactions(limit=1000).items
    )


def test_webhooks_signed_with_stripe_scheme():
    g = gw(webhook_secret="whsec_test")
    cid, pm = customer(g)
    g.charge(cid, pm, 10_000, "INR", "wh-1", now=T0)
    due = g.webhooks_due(now=T0 + timedelta(minutes=1))
    assert json.loads(due[0].body)["type"] == "customer.created"
    for d in due:
        verify_stripe(d.headers["Stripe-Signature"], d.body, ["whsec_test"],
                      now=(T0 + timedelta(minutes=1)).timestamp(), tolerance_s=300)  # fmt: skip
    assert g.webhooks_due(now=T0 + timedelta(minutes=2)) == []  # delivered once
    again = g.redeliver(due[0].event_id, now=T0 + timedelta(minutes=3))
    assert again.body == due[0].body and again.headers != due[0].headers


def test_injected_timeouts_before_and_after():
    g = gw(timeouts=lambda key: {"lost": "before", "charged": "after"}.get(key))
    cid, pm = customer(g)
    with pytest.raises(GatewayTimeout):
        g.charge(cid, pm, 10_000, "INR", "lost", now=T0)
    assert g.find_payment("lost", now=T0) is None
    with pytest.raises(GatewayTimeout):
        g.charge(cid, pm, 10_000, "INR", "charged", now=T0)
    found = g.find_payment("charged", now=T0)
    assert found is not None and found.idempotency_key == "charged"


def test_state_survives_reopen(tmp_path):
    path = tmp_path / "sim.sqlite"
    g = SimulatedGateway(11, 10, state=path)
    cid, pm = customer(g)
    r = g.charge(cid, pm, 10_000, "INR", "persist", now=T0)
    g.store.close()
    again = SimulatedGateway(11, 10, state=path)
    assert again.find_payment("persist", now=T0) == r
    assert again.charge(cid, pm, 10_000, "INR", "persist", now=T0) == r
    assert len(again.list_payments().items) == 1


def test_retry_success_depends_on_payday_and_time_since_failure():
    mid = datetime(2026, 3, 12, 6, tzinfo=UTC)
    payday = datetime(2026, 4, 1, 6, tzinfo=UTC)
    assert world.retry_success_probability(
        "insufficient_funds", 48, payday, 2, 1
    ) > 3 * world.retry_success_probability("insufficient_funds", 48, mid, 2, 1)
    assert world.retry_success_probability(
        "issuer_not_available", 48, mid, 2, 1
    ) > 2 * world.retry_success_probability("issuer_not_available", 2, mid, 2, 1)


def test_send_webhooks_marks_only_2xx_as_delivered():
    import http.server
    import threading

    received: list[bytes] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            ok = (
                verify_stripe(
                    self.headers["Stripe-Signature"],
                    body,
                    ["whsec_r"],
                    now=T0.timestamp(),
                    tolerance_s=300,
                )
                > 0
            )
            # refuse the first delivery of every event (as a receiver that cannot persist: 503)
            first = body not in received
            received.append(body)
            self.send_response(503 if first or not ok else 200)
            self.end_headers()

        def log_message(self, *args):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        g = gw(webhook_secret="whsec_r")
        customer(g)
        url = f"http://127.0.0.1:{srv.server_port}/webhooks/simulated"
        first = g.send_webhooks(url, now=T0)
        assert first and set(first.values()) == {503}
        second = g.send_webhooks(url, now=T0)
        assert set(second) == set(first) and set(second.values()) == {200}
        assert g.send_webhooks(url, now=T0) == {}
        g.create_customer(now=T0)
        assert set(g.send_webhooks("http://127.0.0.1:9/down", now=T0).values()) == {0}
    finally:
        srv.shutdown()
