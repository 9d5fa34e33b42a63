"""Charging on the ledger (`LedgerAttemptStore`, `collect_invoice`, `collect_open_invoices`, the
janitor) against the simulated gateway: attempts recorded before charging, unknown outcomes
resolved without recharging, the pre-charge check, and one transaction per outcome."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from billing_jobs.ledger import schema as s
from billing_jobs.payments.attempt_store import LedgerAttemptStore
from billing_jobs.payments.charging import (
    NOT_CHARGED,
    AlreadyPaid,
    AttemptInFlight,
    AttemptStatus,
    CollectionError,
    InvoiceCharge,
    NotCollectible,
    RetryNotDue,
    apply_gateway_outcome,
    collect_invoice,
    resolve_unknown_attempts,
    retry_context,
)
from billing_jobs.payments.collection import collect_open_invoices, run_due_retries
from billing_jobs.payments.gateway import PaymentStatus, idempotency_key_for
from billing_jobs.payments.janitor import repair_orphans, resolve_unknown
from billing_jobs.payments.payment_methods import add_payment_method
from billing_jobs.payments.retries import ExponentialPolicy
from billing_jobs.subscriptions.service import create_subscription
from simulation.gateway.simulated import SimulatedGateway

T0 = datetime(2025, 3, 3, 6, 0, tzinfo=UTC)
NETBANKING = {"kind": "netbanking", "token": "tok_netbanking_HDFC", "bank": "HDFC"}
UPI = {"kind": "upi", "token": "tok_upi_okicici", "vpa": "acme@okicici"}
# Expires in March 2025; billed in April it declines with expired_card (customer must act).
EXPIRING = {"kind": "card", "token": "tok_card_sbi_visa_4242_03_2025", "last4": "4242",
            "exp_month": 3, "exp_year": 2025}  # fmt: skip


class Clock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


def _gateway(tmp_path, timeouts=None) -> SimulatedGateway:
    clock = Clock(T0)
    gw = SimulatedGateway(7, 1, state=tmp_path / "gw.sqlite", clock=clock, timeouts=timeouts)
    gw.test_clock = clock  # type: ignore[attr-defined]
    return gw


def _at(gw, t: datetime) -> datetime:
    gw.test_clock.t = t
    return t


def _open_invoice(ledger, new_customer, gw, method=NETBANKING, start=T0, ref="c0"):
    """A customer with `method` as default and one open invoice; returns (invoice id, charge)."""
    cid = new_customer(ledger, email=f"{ref}@acme.example", external_ref=ref)
    m = add_payment_method(ledger, gw, cid, method, T0)  # a card valid when it was added
    create_subscription(ledger, customer_id=cid, plan="scale-monthly", start=start)
    inv = s.invoices
    with ledger.connect() as conn:
        row = conn.execute(select(inv).where(inv.c.customer_id == cid)).one()
        gcus = conn.execute(
            select(s.payments_gateway_customers.c.gateway_customer_id).where(
                s.payments_gateway_customers.c.customer_id == cid
            )
        ).scalar_one()
    due = row.amount_due_minor - row.amount_paid_minor
    return row.id, InvoiceCharge(str(row.id), gcus, m["token"], due, row.currency)


def _invoice(ledger, inv_id):
    with ledger.connect() as conn:
        return conn.execute(select(s.invoices).where(s.invoices.c.id == inv_id)).one()


def _state(ledger, inv_id):
    cs = s.payments_collection_state
    with ledger.connect() as conn:
        return conn.execute(select(cs).where(cs.c.invoice_id == inv_id)).first()


def _schedule_retry(ledger, inv_id, at):
    cs = s.payments_collection_state
    with ledger.begin() as conn:
        conn.execute(update(cs).where(cs.c.invoice_id == inv_id).values(next_retry_at=at))


def test_records_before_charging_and_finalizes(ledger, new_customer, tmp_path):
    gw = _gateway(tmp_path)
    inv_id, charge = _open_invoice(ledger, new_customer, gw)
    store = LedgerAttemptStore(ledger, "simulated")
    a = collect_invoice(store, gw, charge, T0)
    assert a.status is AttemptStatus.SUCCEEDED
    assert a.attempt_number == 1 and a.idempotency_key == idempotency_key_for(str(inv_id), 1)
    assert a.gateway_payment_id and store.has_success(str(inv_id))
    assert gw.find_payment(a.idempotency_key).metadata["invoice_id"] == str(inv_id)
    with pytest.raises(AlreadyPaid):
        collect_invoice(store, gw, charge, T0)


def test_collection_pays_the_invoice_in_the_finalizing_transaction(ledger, new_customer, tmp_path):
    gw = _gateway(tmp_path)
    inv_id, _ = _open_invoice(ledger, new_customer, gw)
    report = collect_open_invoices(ledger, gw, "simulated", T0)
    assert report.charged == report.paid == [inv_id]
    inv, state = _invoice(ledger, inv_id), _state(ledger, inv_id)
    assert inv.status == "paid" and inv.amount_paid_minor == inv.amount_due_minor
    assert state.closed == 1 and state.claim_attempt_id is None


def test_a_decline_is_retried_only_when_scheduled_and_never_on_a_hard_declined_method(
    ledger, new_customer, tmp_path
):
    gw = _gateway(tmp_path)
    start = _at(gw, T0 + timedelta(days=31))
    inv_id, charge = _open_invoice(ledger, new_customer, gw, EXPIRING, start)
    report = collect_open_invoices(ledger, gw, "simulated", start)
    assert report.failed == [inv_id] and report.retries_scheduled == {}
    state = _state(ledger, inv_id)
    assert state.dunning_json and state.next_retry_at is None and state.claim_attempt_id is None
    assert (state.declined_token, state.declined_code) == (charge.payment_method, "expired_card")
    store = LedgerAttemptStore(ledger, "simulated")
    # Whoever calls it, the pre-charge check refuses: no retry is scheduled ...
    other = InvoiceCharge(charge.invoice_id, charge.customer_id, "pm_other", charge.amount_minor,
                          charge.currency)  # fmt: skip
    with pytest.raises(RetryNotDue, match="no retry is scheduled"):
        collect_invoice(store, gw, other, start + timedelta(days=1))
    # ... and even with one scheduled, never on the method that declined with expired_card.
    _schedule_retry(ledger, inv_id, start)
    with pytest.raises(RetryNotDue, match="never retried automatically"):
        collect_invoice(store, gw, charge, start + timedelta(days=1))
    assert run_due_retries(ledger, gw, start + timedelta(days=1)).charged == []
    # A new method is charged at once, with attempt number 2 and a new key.
    t1 = _at(gw, start + timedelta(days=2))
    add_payment_method(ledger, gw, int(_invoice(ledger, inv_id).customer_id), NETBANKING, t1,
                       make_default=True)  # fmt: skip
    retried = run_due_retries(ledger, gw, t1)
    assert retried.charged == [inv_id]
    first, second = store.attempts(str(inv_id))
    assert second.attempt_number == 2 and second.idempotency_key != first.idempotency_key
    assert len(gw.payments_for_invoice(str(inv_id))) == 2


def test_a_scheduled_retry_waits_for_its_time(ledger, new_customer, tmp_path):
    gw = _gateway(tmp_path)
    start = _at(gw, T0 + timedelta(days=31))
    inv_id, charge = _open_invoice(ledger, new_customer, gw, EXPIRING, start)
    collect_open_invoices(ledger, gw, "simulated", start)
    _schedule_retry(ledger, inv_id, start + timedelta(days=3))
    other = InvoiceCharge(charge.invoice_id, charge.customer_id, "pm_other", charge.amount_minor,
                          charge.currency)  # fmt: skip
    store = LedgerAttemptStore(ledger, "simulated")
    with pytest.raises(RetryNotDue, match="scheduled at"):
        store.record_pending(other, start + timedelta(days=1))
    a = store.record_pending(other, start + timedelta(days=3))
    assert a.attempt_number == 2
    state = _state(ledger, inv_id)
    assert state.next_retry_at is None and state.claim_attempt_id == int(a.attempt_id)
    with pytest.raises(AttemptInFlight):  # the claim holds until the attempt is resolved
        store.record_pending(other, start + timedelta(days=3))


def test_only_open_invoices_are_charged(ledger, new_customer, tmp_path):
    from billing_jobs.invoicing.invoices import void_invoice

    gw = _gateway(tmp_path)
    inv_id, charge = _open_invoice(ledger, new_customer, gw)
    void_invoice(ledger, inv_id, at=T0)
    with pytest.raises(NotCollectible, match="void"):
        LedgerAttemptStore(ledger, "simulated").record_pending(charge, T0)
    assert gw.payments_for_invoice(str(inv_id)) == []


def test_retry_context_from_history_drives_the_policy(ledger, new_customer, tmp_path):
    gw = _gateway(tmp_path)
    start = _at(gw, T0 + timedelta(days=31))
    inv_id, charge = _open_invoice(ledger, new_customer, gw, EXPIRING, start)
    store = LedgerAttemptStore(ledger, "simulated")
    assert retry_context(charge, [], "simulated") is None
    collect_open_invoices(ledger, gw, "simulated", start)
    ctx = retry_context(charge, store.attempts(str(inv_id)), "simulated")
    assert (ctx.attempts_made, ctx.decline_code) == (1, "expired_card")
    assert ctx.first_failed_at == ctx.last_failed_at == start
    assert not ExponentialPolicy().next_attempt(ctx).retry  # expired card: the customer must act


def test_gateway_rejection_is_a_failed_attempt(ledger, new_customer, tmp_path):
    gw = _gateway(tmp_path)
    _, charge = _open_invoice(ledger, new_customer, gw)
    bad = InvoiceCharge(charge.invoice_id, charge.customer_id, "pm_never_attached",
                        charge.amount_minor, charge.currency)  # fmt: skip
    a = collect_invoice(LedgerAttemptStore(ledger, "simulated"), gw, bad, T0)
    assert a.status is AttemptStatus.FAILED and a.decline_code == "resource_missing"


def test_timeout_after_charge_is_unknown_then_settled_without_recharging(
    ledger, new_customer, tmp_path
):
    gw = _gateway(tmp_path, timeouts=lambda key: "after" if key.endswith("-1") else None)
    inv_id, _ = _open_invoice(ledger, new_customer, gw)
    report = collect_open_invoices(ledger, gw, "simulated", T0)
    assert report.charged == report.pending == [inv_id]
    (a,) = LedgerAttemptStore(ledger, "simulated").attempts(str(inv_id))
    assert a.status is AttemptStatus.UNKNOWN
    assert _state(ledger, inv_id).claim_attempt_id == int(a.attempt_id)
    assert collect_open_invoices(ledger, gw, "simulated", T0).charged == []
    payments_before = len(gw.list_payments().items)
    settled = resolve_unknown(ledger, gw, _at(gw, T0 + timedelta(minutes=1)))
    assert settled.paid + settled.failed == [inv_id]
    (done,) = LedgerAttemptStore(ledger, "simulated").attempts(str(inv_id))
    assert done.gateway_payment_id == gw.find_payment(a.idempotency_key).gateway_payment_id
    assert len(gw.list_payments().items) == payments_before  # the janitor never charges
    if settled.paid:
        assert _invoice(ledger, inv_id).status == "paid"
    assert _state(ledger, inv_id).claim_attempt_id is None


def test_timeout_before_reaching_gateway_is_not_charged_and_scheduled_again(
    ledger, new_customer, tmp_path
):
    gw = _gateway(tmp_path, timeouts=lambda key: "before" if key.endswith("-1") else None)
    inv_id, _ = _open_invoice(ledger, new_customer, gw)
    collect_open_invoices(ledger, gw, "simulated", T0)
    assert resolve_unknown(ledger, gw, T0 + timedelta(minutes=1)).failed == []  # too fresh
    later = _at(gw, T0 + timedelta(hours=1))
    report = resolve_unknown(ledger, gw, later)
    assert report.failed == [inv_id] and inv_id in report.retries_scheduled
    (a,) = LedgerAttemptStore(ledger, "simulated").attempts(str(inv_id))
    assert (a.status, a.decline_code) == (AttemptStatus.FAILED, NOT_CHARGED)
    assert gw.payments_for_invoice(str(inv_id)) == []
    due = datetime.fromisoformat(report.retries_scheduled[inv_id])
    assert run_due_retries(ledger, gw, _at(gw, due)).charged == [inv_id]


def test_crash_between_record_and_charge_is_resolved_by_the_janitor(ledger, new_customer, tmp_path):
    gw = _gateway(tmp_path)
    inv_id, charge = _open_invoice(ledger, new_customer, gw)
    store = LedgerAttemptStore(ledger, "simulated")
    a = store.record_pending(charge, T0)  # ...and the process died here
    assert collect_open_invoices(ledger, gw, "simulated", T0).charged == []
    with pytest.raises(AttemptInFlight):
        collect_invoice(store, gw, charge, T0)
    report = resolve_unknown(ledger, gw, _at(gw, T0 + timedelta(hours=1)))
    assert report.failed == [inv_id]
    assert store.get(a.attempt_id).decline_code == NOT_CHARGED
    assert _state(ledger, inv_id).next_retry_at is not None  # retried, never lost


def test_crash_after_the_gateway_charged_is_paid_by_the_janitor(ledger, new_customer, tmp_path):
    gw = _gateway(tmp_path)
    inv_id, charge = _open_invoice(ledger, new_customer, gw)
    store = LedgerAttemptStore(ledger, "simulated")
    a = store.record_pending(charge, T0)
    gw.charge(
        charge.customer_id,
        charge.payment_method,
        charge.amount_minor,
        charge.currency,
        a.idempotency_key,
        metadata={"invoice_id": charge.invoice_id},
    )  # ...then died
    report = resolve_unknown(ledger, gw, _at(gw, T0 + timedelta(hours=1)))
    assert report.paid == [inv_id] and _invoice(ledger, inv_id).status == "paid"
    assert len(gw.payments_for_invoice(str(inv_id))) == 1


def test_a_late_success_overrules_a_not_charged_guess(ledger, new_customer, tmp_path):
    """The janitor judged an attempt not charged (the gateway had no record yet), then the
    gateway reports it succeeded: the invoice is paid and its retry cancelled."""
    gw = _gateway(tmp_path)
    inv_id, charge = _open_invoice(ledger, new_customer, gw)
    store = LedgerAttemptStore(ledger, "simulated")
    a = store.record_pending(charge, T0)
    resolve_unknown(ledger, gw, _at(gw, T0 + timedelta(hours=1)))
    assert store.get(a.attempt_id).decline_code == NOT_CHARGED
    result = gw.charge(charge.customer_id, charge.payment_method, charge.amount_minor,
                       charge.currency, a.idempotency_key)  # fmt: skip
    from billing_jobs.payments.outcomes import finish_attempt
    from billing_jobs.payments.state import CollectionReport

    report = CollectionReport()
    finish_attempt(ledger, "simulated", a.attempt_id, result, T0 + timedelta(hours=2), report)
    assert report.paid == [inv_id] and _invoice(ledger, inv_id).status == "paid"
    assert _state(ledger, inv_id).next_retry_at is None


def test_orphans_left_by_an_interrupted_writer_are_repaired(ledger, new_customer, tmp_path):
    """A success with its invoice still open and a decline without retry or dunning state (as
    separate transactions could leave them): the janitor settles both, once."""
    gw = _gateway(tmp_path)
    paid_id, paid_charge = _open_invoice(ledger, new_customer, gw, ref="p")
    start = T0 + timedelta(days=31)
    declined_id, declined_charge = _open_invoice(ledger, new_customer, gw, EXPIRING, start, "d")
    raw = LedgerAttemptStore(ledger, "simulated", keeps_own_schedule=True)  # bypasses settling
    for charge, t in ((paid_charge, T0), (declined_charge, start)):
        collect_invoice(raw, gw, charge, _at(gw, t))
    assert _invoice(ledger, paid_id).status == "open" and _state(ledger, declined_id) is None
    report = repair_orphans(ledger, "simulated", start + timedelta(hours=1))
    assert report.paid == [paid_id] and report.failed == [declined_id]
    assert _invoice(ledger, paid_id).status == "paid"
    assert _state(ledger, declined_id).dunning_json
    again = repair_orphans(ledger, "simulated", start + timedelta(hours=2))
    assert again.paid == again.failed == []


def test_upi_processing_then_webhook_duplicates_and_late_outcomes(ledger, new_customer, tmp_path):
    gw = _gateway(tmp_path)
    _, charge = _open_invoice(ledger, new_customer, gw, UPI)
    store = LedgerAttemptStore(ledger, "simulated")
    a = collect_invoice(store, gw, charge, T0)
    assert a.status is AttemptStatus.PROCESSING
    final = gw.fetch_payment(a.gateway_payment_id)
    _at(gw, T0 + timedelta(days=2))
    final = gw.fetch_payment(a.gateway_payment_id)
    assert final.status in (PaymentStatus.SUCCEEDED, PaymentStatus.FAILED)
    done = apply_gateway_outcome(store, final, T0 + timedelta(days=2))
    assert done.status.value == final.status.value
    # a duplicate and a stale "pending" arriving late change nothing
    assert apply_gateway_outcome(store, final, T0 + timedelta(days=2)) == done
    stale = final.__class__(**{**asdict(final), "status": PaymentStatus.PENDING})
    assert apply_gateway_outcome(store, stale, T0 + timedelta(days=2)) == done


def test_resolve_unknown_attempts_on_the_store_never_charges(ledger, new_customer, tmp_path):
    gw = _gateway(tmp_path, timeouts=lambda key: "before")
    _, charge = _open_invoice(ledger, new_customer, gw)
    store = LedgerAttemptStore(ledger, "simulated")
    a = collect_invoice(store, gw, charge, T0)
    assert a.status is AttemptStatus.UNKNOWN
    assert resolve_unknown_attempts(store, gw, T0 + timedelta(minutes=1)) == []  # too fresh
    [r] = resolve_unknown_attempts(store, gw, T0 + timedelta(hours=1))
    assert (r.status, r.decline_code) == (AttemptStatus.FAILED, NOT_CHARGED)
    assert gw.list_payments().items == []


def test_store_validation(ledger, new_customer, tmp_path):
    with pytest.raises(CollectionError):
        InvoiceCharge("1", "cus", "pm", 0, "INR")
    gw = _gateway(tmp_path)
    _, charge = _open_invoice(ledger, new_customer, gw)
    with pytest.raises(CollectionError, match="timezone-aware"):
        LedgerAttemptStore(ledger, "simulated").record_pending(charge, datetime(2026, 1, 1))
