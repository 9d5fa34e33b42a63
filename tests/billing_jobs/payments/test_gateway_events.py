"""Gateway events applied to a real ledger (SQLite, and PostgreSQL when configured) with payments
made through the real simulated gateway: duplicates, out-of-order delivery, malformed payloads,
unknown types and unknown payments."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from billing_jobs.ledger import schema as s
from billing_jobs.ledger.schema import (
    payments_collection_state,
    payments_disputes,
    payments_gateway_events,
    payments_refunds,
)
from billing_jobs.payments import gateway_events as ge
from billing_jobs.payments.collection import collect_open_invoices
from billing_jobs.payments.event_parsing import IncomingEvent
from billing_jobs.payments.gateway import IDEMPOTENCY_METADATA_KEY
from billing_jobs.payments.payment_methods import add_payment_method
from billing_jobs.payments.state import PaymentsError
from billing_jobs.subscriptions.service import create_subscription
from simulation.gateway.simulated import SimulatedGateway

T0 = datetime(2025, 3, 3, 6, 0, tzinfo=UTC)
UPI = {"kind": "upi", "token": "tok_upi_okhdfcbank", "vpa": "acme@okhdfcbank"}
NETBANKING = {"kind": "netbanking", "token": "tok_netbanking_HDFC", "bank": "HDFC"}


class Clock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


@pytest.fixture
def gw(tmp_path):
    return SimulatedGateway(7, 1, state=tmp_path / "gw.sqlite", clock=Clock(T0))


def _invoice_with_attempt(ledger, new_customer, gw, method):
    cid = new_customer(ledger, email="ap@acme.example")
    add_payment_method(ledger, gw, cid, method, T0)
    create_subscription(ledger, customer_id=cid, plan="starter-monthly", start=T0, trial_days=0)
    collect_open_invoices(ledger, gw, "simulated", T0)
    with ledger.connect() as conn:
        inv = conn.execute(select(s.invoices)).one()
        attempt = conn.execute(select(s.payment_attempts)).one()
    return inv, attempt


@pytest.fixture
def pending(ledger, new_customer, gw):
    """A UPI invoice whose attempt is pending at the gateway (the bank answers later)."""
    inv, attempt = _invoice_with_attempt(ledger, new_customer, gw, UPI)
    assert attempt.status == "pending" and attempt.gateway_payment_id
    return inv, attempt


@pytest.fixture
def captured(ledger, new_customer, gw):
    inv, attempt = _invoice_with_attempt(ledger, new_customer, gw, NETBANKING)
    assert attempt.status == "succeeded", "the scenario needs a captured first payment"
    return inv, attempt


def _pi(attempt, status: str, **extra) -> dict:
    return {"id": attempt.gateway_payment_id, "object": "payment_intent",
            "amount": attempt.amount_minor, "currency": attempt.currency.lower(),
            "status": status, "metadata": {IDEMPOTENCY_METADATA_KEY: attempt.idempotency_key},
            **extra}  # fmt: skip


def _event(eid: str, type_: str, obj: dict, at: datetime, source: str = "simulated"):
    body = json.dumps({"id": eid, "object": "event", "type": type_,
                       "created": int(at.timestamp()), "data": {"object": obj}})  # fmt: skip
    return IncomingEvent(source, eid, type_, body, at)


def _raw(eid: str, type_: str, body: str):
    return IncomingEvent("simulated", eid, type_, body, T0)


def _invoice(ledger, inv_id):
    with ledger.connect() as conn:
        return conn.execute(select(s.invoices).where(s.invoices.c.id == inv_id)).one()


def _attempt(ledger, attempt_id):
    with ledger.connect() as conn:
        return conn.execute(
            select(s.payment_attempts).where(s.payment_attempts.c.id == attempt_id)
        ).one()


def _snapshot(ledger) -> dict:
    """Everything an event can change, to prove a re-run changes nothing."""
    tables = [s.invoices, s.payment_attempts, s.credit_notes, payments_refunds, payments_disputes,
              payments_collection_state]  # fmt: skip
    with ledger.connect() as conn:
        out = {t.name: [tuple(r) for r in conn.execute(select(t).order_by(*t.primary_key))]
               for t in tables}  # fmt: skip
        out["events"] = conn.execute(
            select(payments_gateway_events.c.event_id, payments_gateway_events.c.status).order_by(
                payments_gateway_events.c.event_id
            )
        ).all()
    return out


def _statuses(ledger) -> dict[str, str]:
    g = payments_gateway_events
    with ledger.connect() as conn:
        return dict(conn.execute(select(g.c.event_id, g.c.status)).all())


# -- late payment outcomes ---------------------------------------------------------------------
def test_late_upi_success_marks_the_invoice_paid_exactly_once(ledger, pending):
    inv, attempt = pending
    late = T0 + timedelta(hours=5)
    success = _event("evt_ok", "payment_intent.succeeded", _pi(attempt, "succeeded"), late)
    report = ge.apply_gateway_events(ledger, [success, success], late)
    assert (report.applied, report.duplicates) == (1, 1)
    assert report.paid == [inv.id]
    paid = _invoice(ledger, inv.id)
    assert paid.status == "paid" and paid.amount_paid_minor == inv.amount_due_minor
    assert paid.paid_at == late.replace(microsecond=0)
    assert _attempt(ledger, attempt.id).status == "succeeded"
    # The same outcome again under another event id (charge.succeeded) changes nothing.
    charge = {"id": "ch_1", "object": "charge", "payment_intent": attempt.gateway_payment_id,
              "amount": attempt.amount_minor, "currency": "inr", "status": "succeeded"}  # fmt: skip
    before = _snapshot(ledger)
    again = ge.apply_gateway_events(ledger, [_event("evt_ch", "charge.succeeded", charge, late)],
                                    late + timedelta(hours=1))  # fmt: skip
    assert again.ignored == 1 and again.paid == []
    after = _snapshot(ledger)
    assert {k: v for k, v in after.items() if k != "events"} == {
        k: v for k, v in before.items() if k != "events"
    }


def test_failure_after_success_is_ignored_with_a_note(ledger, captured):
    inv, attempt = captured
    failed = _pi(attempt, "requires_payment_method",
                 last_payment_error={"code": "card_declined", "decline_code": "do_not_honor"})  # fmt: skip
    report = ge.apply_gateway_events(
        ledger, [_event("evt_fail", "payment_intent.payment_failed", failed, T0)], T0
    )
    assert report.ignored == 1
    assert any("after success" in n and "evt_fail" in n for n in report.notes)
    assert _invoice(ledger, inv.id).status == "paid"
    assert _attempt(ledger, attempt.id).status == "succeeded"


def test_late_failure_of_a_pending_attempt_schedules_a_retry(ledger, pending):
    inv, attempt = pending
    at = T0 + timedelta(hours=2)
    failed = _pi(attempt, "requires_payment_method", decline_code="insufficient_funds")
    report = ge.apply_gateway_events(
        ledger, [_event("evt_f", "payment_intent.payment_failed", failed, at)], at
    )
    assert report.applied == 1
    row = _attempt(ledger, attempt.id)
    assert row.status == "failed" and row.decline_code == "insufficient_funds"
    assert _invoice(ledger, inv.id).status == "open"
    with ledger.connect() as conn:
        state = conn.execute(
            select(payments_collection_state).where(
                payments_collection_state.c.invoice_id == inv.id
            )
        ).one()
    assert state.next_retry_at is not None and state.next_retry_at > at.replace(tzinfo=UTC)
    assert state.dunning_json


# -- refunds -----------------------------------------------------------------------------------
def test_refund_before_success_waits_then_applies_once(ledger, pending):
    inv, attempt = pending
    t1, t2 = T0 + timedelta(hours=1), T0 + timedelta(hours=3)
    refund = {"id": "re_1", "object": "refund", "payment_intent": attempt.gateway_payment_id,
              "amount": 10_000, "currency": "inr", "status": "succeeded"}  # fmt: skip
    refund_ev = _event("evt_re", "refund.created", refund, t2)
    first = ge.apply_gateway_events(ledger, [refund_ev], t1)
    assert first.unmatched == 1 and first.applied == 0
    assert [e["event_id"] for e in ge.unmatched_events(ledger)] == ["evt_re"]
    success = _event("evt_ok", "payment_intent.succeeded", _pi(attempt, "succeeded"), t1)
    second = ge.apply_gateway_events(ledger, [success], t2)
    assert second.applied == 2 and second.rematched == 1 and second.unmatched == 0
    with ledger.connect() as conn:
        rows = conn.execute(select(payments_refunds)).all()
        notes = conn.execute(select(func.count()).select_from(s.credit_notes)).scalar_one()
    assert [(r.gateway_refund_id, r.amount_minor) for r in rows] == [("re_1", 10_000)]
    assert notes == 1 and rows[0].credit_note_id is not None
    assert _invoice(ledger, inv.id).status == "paid"
    # A re-run of everything (the sensor re-delivers, or a crash before the cursor moved).
    before = _snapshot(ledger)
    rerun = ge.apply_gateway_events(ledger, [refund_ev, success], t2 + timedelta(hours=1))
    assert (rerun.duplicates, rerun.applied, rerun.unmatched) == (2, 0, 0)
    assert _snapshot(ledger) == before


def test_refunds_never_exceed_the_captured_amount(ledger, captured):
    _, attempt = captured
    pid, amount = attempt.gateway_payment_id, attempt.amount_minor
    first = amount * 6 // 10

    def refund(rid, value):
        return {"id": rid, "object": "refund", "payment_intent": pid, "amount": value,
                "currency": "inr", "status": "succeeded"}  # fmt: skip

    # Stripe's charge.refunded carries the charge with its refunds listed.
    charge = {"id": "ch_9", "object": "charge", "payment_intent": pid, "amount": amount,
              "currency": "inr", "amount_refunded": first,
              "refunds": {"data": [refund("re_a", first)]}}  # fmt: skip
    events = [
        _event("evt_1", "charge.refunded", charge, T0 + timedelta(days=1)),
        _event("evt_2", "refund.created", refund("re_a", first), T0 + timedelta(days=1)),
        _event("evt_3", "refund.created", refund("re_b", first), T0 + timedelta(days=2)),
        _event("evt_4", "refund.created", refund("re_c", amount - first), T0 + timedelta(days=3)),
    ]
    # Without embedded refunds (newer API versions) the refund.* events carry them.
    bare = {k: v for k, v in charge.items() if k != "refunds"}
    events.append(_event("evt_5", "charge.refunded", bare, T0 + timedelta(days=3)))
    report = ge.apply_gateway_events(ledger, events, T0 + timedelta(days=4))
    assert _statuses(ledger) == {"evt_1": "applied", "evt_2": "ignored", "evt_3": "rejected",
                                 "evt_4": "applied", "evt_5": "ignored"}  # fmt: skip
    assert any("exceeds" in n for n in report.notes)
    with ledger.connect() as conn:
        total = conn.execute(select(func.sum(payments_refunds.c.amount_minor))).scalar_one()
    assert total == amount


# -- disputes ----------------------------------------------------------------------------------
def _dispute(attempt, status: str | None, **extra) -> dict:
    obj = {"id": "dp_1", "object": "dispute", "payment_intent": attempt.gateway_payment_id,
           "amount": attempt.amount_minor, "currency": "inr", "reason": "fraudulent", **extra}  # fmt: skip
    if status is not None:
        obj["status"] = status
    return obj


def _dispute_row(ledger):
    with ledger.connect() as conn:
        return conn.execute(select(payments_disputes)).one()


def test_dispute_closed_before_created_stays_lost(ledger, captured):
    inv, attempt = captured
    opened, closed = T0 + timedelta(days=10), T0 + timedelta(days=40)
    lost = _event("evt_lost", "charge.dispute.closed", _dispute(attempt, "lost"), closed)
    created = _event("evt_new", "charge.dispute.created", _dispute(attempt, None), opened)
    report = ge.apply_gateway_events(ledger, [lost, created], closed)
    assert (report.applied, report.ignored) == (1, 1)
    row = _dispute_row(ledger)
    assert row.status == "lost" and row.funds_withdrawn_minor == attempt.amount_minor
    assert row.opened_at == opened.replace(microsecond=0) and row.closed_at is not None
    # As at Stripe, a lost dispute keeps the money withdrawn and the invoice paid.
    assert _invoice(ledger, inv.id).status == "paid"


def test_dispute_won_gives_the_money_back(ledger, captured):
    _, attempt = captured
    t = T0 + timedelta(days=10)
    events = [
        _event("evt_d1", "charge.dispute.created", _dispute(attempt, "needs_response"), t),
        _event("evt_d2", "charge.dispute.updated", _dispute(attempt, "under_review"),
               t + timedelta(days=2)),
        _event("evt_d3", "charge.dispute.closed", _dispute(attempt, "won"), t + timedelta(days=9)),
        # A stale update delivered last must not reopen it.
        _event("evt_d4", "charge.dispute.updated", _dispute(attempt, "needs_response"),
               t + timedelta(days=1)),
    ]  # fmt: skip
    ge.apply_gateway_events(ledger, events, t + timedelta(days=10))
    row = _dispute_row(ledger)
    assert row.status == "won" and row.funds_withdrawn_minor == 0
    assert _statuses(ledger)["evt_d4"] == "ignored"


# -- bad, unknown and unmatched input ----------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("{not json", "not JSON"),
        ('["a list"]', "not a JSON object"),
        (json.dumps({"id": "evt_x", "type": "payment_intent.succeeded", "data": {}}), "data.object"),
        (json.dumps({"id": "evt_x", "type": "payment_intent.succeeded", "created": "yesterday",
                     "data": {"object": {"id": "pi_1", "object": "payment_intent"}}}), "created"),
        (json.dumps({"id": "evt_other", "type": "payment_intent.succeeded",
                     "data": {"object": {}}}), "differs"),
        (json.dumps({"id": "evt_x", "type": "payment_intent.succeeded",
                     "data": {"object": {"id": "pi_1", "object": "payment_intent",
                                         "amount": "100.00", "currency": "inr"}}}), "amount"),
        (json.dumps({"id": "evt_x", "type": "payment_intent.succeeded",
                     "data": {"object": {"id": "pi_1", "object": "payment_intent",
                                         "amount": 100, "currency": "rupees"}}}), "currency"),
    ],
)  # fmt: skip
def test_malformed_payloads_are_kept_as_invalid_and_change_nothing(ledger, pending, body, needle):
    before = _snapshot(ledger)
    report = ge.apply_gateway_events(ledger, [_raw("evt_x", "payment_intent.succeeded", body)], T0)
    assert report.invalid == 1 and any(needle in n for n in report.notes)
    with ledger.connect() as conn:
        row = conn.execute(select(payments_gateway_events)).one()
    assert row.status == "invalid" and row.body == body and needle in row.detail
    after = _snapshot(ledger)
    assert {k: v for k, v in after.items() if k != "events"} == {
        k: v for k, v in before.items() if k != "events"
    }
    rerun = ge.apply_gateway_events(ledger, [_raw("evt_x", "payment_intent.succeeded", body)], T0)
    assert rerun.duplicates == 1 and rerun.invalid == 0


def test_unknown_types_are_skipped_and_counted(ledger, pending):
    events = [
        _event("evt_c", "customer.created", {"id": "cus_1", "email": "a@b.c"}, T0),
        _event("evt_p", "payout.paid", {"id": "po_1", "amount": 100, "currency": "inr"}, T0),
        IncomingEvent("razorpay", "evt_rzp", "payment.captured",
                         '{"entity": "event", "event": "payment.captured"}', T0),
    ]  # fmt: skip
    report = ge.apply_gateway_events(ledger, events, T0)
    assert report.skipped == 3 and report.applied == 0
    assert set(_statuses(ledger).values()) == {"skipped"}


def test_events_for_unknown_payments_are_kept_and_retried(ledger, pending):
    ghost = {"id": "pi_ghost", "object": "payment_intent", "amount": 100, "currency": "inr",
             "status": "succeeded", "metadata": {}}  # fmt: skip
    ev = _event("evt_ghost", "payment_intent.succeeded", ghost, T0)
    first = ge.apply_gateway_events(ledger, [ev], T0)
    assert first.unmatched == 1
    second = ge.apply_gateway_events(ledger, [], T0 + timedelta(hours=1))
    assert second.unmatched == 1 and second.rematched == 0
    (kept,) = ge.unmatched_events(ledger)
    assert kept["event_id"] == "evt_ghost" and kept["tries"] >= 3 and "pi_ghost" in kept["detail"]
    with ledger.connect() as conn:
        body = conn.execute(select(payments_gateway_events.c.body)).scalar_one()
    assert json.loads(body)["data"]["object"]["id"] == "pi_ghost"  # not lost


def test_unverified_events_and_naive_times_are_refused(ledger, pending):
    _, attempt = pending
    ev = _event("evt_u", "payment_intent.succeeded", _pi(attempt, "succeeded"), T0)
    unverified = IncomingEvent(ev.source, ev.event_id, ev.event_type, ev.body, T0, False)
    assert ge.apply_gateway_events(ledger, [unverified], T0).invalid == 1
    assert _attempt(ledger, attempt.id).status == "pending"
    with pytest.raises(PaymentsError, match="timezone-aware"):
        ge.apply_gateway_events(ledger, [], datetime(2025, 3, 3))


def test_cursor_round_trips_in_the_ledger(ledger):
    assert ge.load_cursor(ledger, "webhooks") is None
    ge.save_cursor(ledger, "webhooks", {"webhooks/simulated/2025-03-03/a.jsonl": 10})
    ge.save_cursor(ledger, "webhooks", {"webhooks/simulated/2025-03-03/a.jsonl": 20})
    assert ge.load_cursor(ledger, "webhooks") == {"webhooks/simulated/2025-03-03/a.jsonl": 20}


def test_contradicting_outcomes_are_rejected_not_applied(ledger, pending):
    inv, attempt = pending
    wrong = _pi(attempt, "succeeded", amount=attempt.amount_minor + 1)
    at = T0 + timedelta(hours=1)
    report = ge.apply_gateway_events(
        ledger, [_event("evt_amt", "payment_intent.succeeded", wrong, at)], at
    )
    assert report.rejected == 1 and any("in the ledger" in n for n in report.notes)
    assert _attempt(ledger, attempt.id).status == "pending"
    failed = _pi(attempt, "requires_payment_method", decline_code="insufficient_funds")
    late_ok = _event("evt_ok", "payment_intent.succeeded", _pi(attempt, "succeeded"), at)
    report = ge.apply_gateway_events(
        ledger, [_event("evt_f", "payment_intent.payment_failed", failed, at), late_ok], at
    )
    # Money captured after the ledger closed the attempt as failed: a person decides.
    assert (report.applied, report.rejected) == (1, 1)
    assert any("investigate" in n for n in report.notes)
    assert _invoice(ledger, inv.id).status == "open"


def test_success_for_a_captured_payment_whose_invoice_is_open_marks_it_paid(ledger, captured):
    """A crash of an older version left the attempt succeeded and the invoice open: the
    gateway's payment_intent.succeeded marks it paid instead of being ignored."""
    inv, attempt = captured
    with ledger.begin() as conn:  # the half-done state separate transactions could leave
        conn.execute(
            s.invoices.update()
            .where(s.invoices.c.id == inv.id)
            .values(status="open", amount_paid_minor=0, paid_at=None)
        )
    at = T0 + timedelta(minutes=5)
    ev = _event("evt_paid", "payment_intent.succeeded", _pi(attempt, "succeeded"), at)
    report = ge.apply_gateway_events(ledger, [ev], at)
    assert report.applied == 1 and report.paid == [inv.id]
    assert _invoice(ledger, inv.id).status == "paid"
    again = _event("evt_paid_2", "payment_intent.succeeded", _pi(attempt, "succeeded"), at)
    assert ge.apply_gateway_events(ledger, [again], at).ignored == 1  # paid once


def _ghost(eid: str, at: datetime):
    ghost = {"id": f"pi_{eid}", "object": "payment_intent", "amount": 100, "currency": "inr",
             "status": "succeeded", "metadata": {}}  # fmt: skip
    return _event(eid, "payment_intent.succeeded", ghost, at)


def test_unmatched_events_are_retried_with_growing_gaps_then_quarantined(ledger, pending):
    from billing_jobs.payments.event_quarantine import UNMATCHED_MAX_TRIES, quarantined_events

    ge.apply_gateway_events(ledger, [_ghost("evt_forged", T0)], T0)
    t, runs = T0, 0
    while not quarantined_events(ledger):
        runs += 1
        assert runs < 400, "an unmatched event was never quarantined"
        t += timedelta(minutes=15)
        ge.apply_gateway_events(ledger, [], t)
    (q,) = quarantined_events(ledger)
    assert q["event_id"] == "evt_forged" and q["tries"] == UNMATCHED_MAX_TRIES
    assert "unmatched after" in q["reason"] and "pi_evt_forged" in q["reason"]
    assert timedelta(hours=24) < t - T0 < timedelta(days=3)  # bounded, not minutes
    assert ge.unmatched_events(ledger) == []
    assert _statuses(ledger)["evt_forged"] == "quarantined"
    # a redelivery is still a duplicate; nothing re-enters the queue
    assert ge.apply_gateway_events(ledger, [_ghost("evt_forged", t)], t).duplicates == 1
    assert ge.apply_gateway_events(ledger, [], t + timedelta(days=9)).unmatched == 0


def test_quarantined_events_can_be_replayed_or_discarded(ledger, pending):
    from billing_jobs.payments.event_quarantine import discard, quarantined_events

    _, attempt = pending
    at = T0 + timedelta(hours=1)
    ok = _event("evt_late", "payment_intent.succeeded", _pi(attempt, "succeeded"), at)
    # Quarantined with a tiny budget, as if its payment had been missing for days.
    with ledger.begin() as conn:
        conn.execute(s.payment_attempts.update().values(gateway_payment_id="pi_elsewhere",
                                                        idempotency_key="k_elsewhere"))  # fmt: skip
    report = ge.apply_gateway_events(ledger, [ok, _ghost("evt_junk", at)], at, max_tries=1)
    assert report.quarantined == 2 and len(quarantined_events(ledger)) == 2
    with ledger.begin() as conn:  # the operator fixes what was missing
        conn.execute(
            s.payment_attempts.update().values(
                gateway_payment_id=attempt.gateway_payment_id,
                idempotency_key=attempt.idempotency_key,
            )
        )
    replayed = ge.replay_quarantined(ledger, at + timedelta(hours=1), ["evt_late"])
    assert replayed.applied == 1 and replayed.paid == [pending[0].id]
    assert [q["event_id"] for q in quarantined_events(ledger)] == ["evt_junk"]
    assert discard(ledger, ["evt_junk"]) == 1 and quarantined_events(ledger) == []
