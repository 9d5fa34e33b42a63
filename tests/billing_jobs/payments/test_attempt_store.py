"""LedgerAttemptStore: collection against the ledger's payment_attempts with the simulated gateway."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from billing_jobs.errors import NotFoundError
from billing_jobs.ledger import schema as s
from billing_jobs.payments.attempt_store import LedgerAttemptStore
from billing_jobs.payments.charging import (
    AlreadyPaid,
    AttemptInFlight,
    AttemptStatus,
    CollectionError,
    InvoiceCharge,
    collect_invoice,
    resolve_unknown_attempts,
    retry_context,
)
from billing_jobs.payments.gateway import PaymentResult, PaymentStatus
from billing_jobs.subscriptions.service import create_subscription
from simulation.gateway.port import timeout_rate
from simulation.gateway.simulated import SimulatedGateway

T0 = datetime(2025, 3, 3, 6, 0, tzinfo=UTC)


class Clock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


def _invoice(ledger, new_customer) -> int:
    cid = new_customer(ledger)
    create_subscription(ledger, customer_id=cid, plan="scale-monthly", start=T0)
    with ledger.connect() as conn:
        return conn.execute(select(s.invoices.c.id)).scalar_one()


def _gateway(tmp_path, token: str, timeouts=None):
    clock = Clock(T0)
    gw = SimulatedGateway(7, 1, state=tmp_path / "gw.sqlite", clock=clock, timeouts=timeouts)
    cus = gw.create_customer(email="a@example.com", now=T0)
    pm = gw.attach_payment_method(cus.gateway_customer_id, token)
    return gw, clock, cus.gateway_customer_id, pm.token


def _charge(inv_id: int, cus: str, pm: str, amount: int = 1_179_882) -> InvoiceCharge:
    return InvoiceCharge(str(inv_id), cus, pm, amount, "INR")


def test_success_then_no_second_charge(ledger, new_customer, tmp_path):
    inv = _invoice(ledger, new_customer)
    gw, clock, cus, pm = _gateway(tmp_path, "tok_netbanking_HDFC")
    store = LedgerAttemptStore(ledger, "simulated")
    attempts = []
    while not attempts or attempts[-1].status is not AttemptStatus.SUCCEEDED:
        attempts.append(collect_invoice(store, gw, _charge(inv, cus, pm), clock.t))
        clock.t += timedelta(days=3)
        assert len(attempts) < 8
    assert [a.attempt_number for a in attempts] == list(range(1, len(attempts) + 1))
    assert store.has_success(str(inv))
    with pytest.raises(AlreadyPaid):
        collect_invoice(store, gw, _charge(inv, cus, pm), clock.t)
    with ledger.connect() as conn:
        rows = conn.execute(select(s.payment_attempts)).all()
    assert len(rows) == len(attempts) and rows[-1].finalized_at is not None
    assert store.get_by_key(attempts[-1].idempotency_key) == store.attempts(str(inv))[-1]


def test_upi_pending_is_processing_until_the_janitor_resolves_it(ledger, new_customer, tmp_path):
    inv = _invoice(ledger, new_customer)
    gw, clock, cus, pm = _gateway(tmp_path, "tok_upi_okicici")
    store = LedgerAttemptStore(ledger, "simulated")
    a = collect_invoice(store, gw, _charge(inv, cus, pm), clock.t)
    assert a.status is AttemptStatus.PROCESSING and a.gateway_payment_id
    with pytest.raises(AttemptInFlight):
        collect_invoice(store, gw, _charge(inv, cus, pm), clock.t)
    assert [x.attempt_id for x in store.list_unknown(clock.t)] == [a.attempt_id]
    clock.t += timedelta(days=2)
    (done,) = resolve_unknown_attempts(store, gw, clock.t)
    assert done.status in (AttemptStatus.SUCCEEDED, AttemptStatus.FAILED)
    assert store.list_unknown(clock.t) == []


def test_timeout_before_charge_resolves_to_failed_without_charging(ledger, new_customer, tmp_path):
    inv = _invoice(ledger, new_customer)
    gw, clock, cus, pm = _gateway(tmp_path, "tok_wallet_paytm", timeouts=timeout_rate(1, 1.0, 0.0))
    store = LedgerAttemptStore(ledger, "simulated")
    a = collect_invoice(store, gw, _charge(inv, cus, pm), clock.t)
    assert a.status is AttemptStatus.UNKNOWN
    clock.t += timedelta(hours=1)
    (done,) = resolve_unknown_attempts(store, gw, clock.t)
    assert done.status is AttemptStatus.FAILED and done.decline_code == "gateway_timeout"
    assert gw.payments_for_invoice(str(inv)) == []


def test_requires_action_is_stored_as_failed_with_an_action_code(ledger, new_customer):
    inv = _invoice(ledger, new_customer)
    store = LedgerAttemptStore(ledger, "simulated")
    a = store.record_pending(_charge(inv, "cus", "pm"), T0)
    res = PaymentResult(PaymentStatus.REQUIRES_ACTION, "pi_1", 1_179_882, "INR")
    done = store.finalize(a.attempt_id, res, T0)
    assert done.status is AttemptStatus.FAILED and done.decline_code == "authentication_required"
    # final states never change, and the retry policy sees an action code (never retried)
    again = store.finalize(
        a.attempt_id, PaymentResult(PaymentStatus.SUCCEEDED, "pi_1", 1, "INR"), T0
    )
    assert again.status is AttemptStatus.FAILED
    ctx = retry_context(_charge(inv, "cus", "pm"), store.attempts(str(inv)), "simulated")
    assert ctx is not None and ctx.decline_code == "authentication_required"


def test_bad_input_is_refused(ledger, new_customer):
    store = LedgerAttemptStore(ledger, "simulated")
    with pytest.raises(CollectionError, match="integers"):
        store.record_pending(InvoiceCharge("inv-x", "c", "p", 10, "INR"), T0)
    with pytest.raises(CollectionError, match="timezone-aware"):
        store.record_pending(_charge(1, "c", "p"), T0.replace(tzinfo=None))
    with pytest.raises(CollectionError, match="gateway"):
        LedgerAttemptStore(ledger, "")


def test_unknown_invoice_is_not_found(ledger):
    store = LedgerAttemptStore(ledger, "simulated")
    with pytest.raises(NotFoundError, match="does not exist"):
        store.record_pending(InvoiceCharge("987654", "c", "p", 10, "INR"), T0)
