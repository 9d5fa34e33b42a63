"""The dunning run on a real ledger (SQLite and PostgreSQL): `advance_dunning` in the caller's
transaction on processes the caller holds, `run_dunning` on those in the ledger; each
notification and mail once, unchanged processes left alone, bad input refused or reported."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from billing_jobs.ledger import schema as s
from billing_jobs.ledger.schema import (
    document_deliveries,
    payments_collection_state,
    payments_dunning_notifications,
)
from billing_jobs.payments import dunning_run
from billing_jobs.payments.dunning import DunningError, DunningInvoice, start_dunning
from billing_jobs.payments.dunning_run import (
    DunningCase,
    Effect,
    advance_dunning,
    open_dunning_cases,
    run_dunning,
)
from billing_jobs.payments.state import PaymentsError, dump_dunning, load_dunning, upsert_state
from billing_jobs.subscriptions.service import create_subscription
from billing_jobs.subscriptions.state import get_subscription

T0 = datetime(2025, 3, 3, 6, 0, tzinfo=UTC)


def _failing(ledger, new_customer, email: str | None = "ap@acme.example", store: bool = True):
    """An open invoice whose first payment failed at T0: (customer, subscription, invoice)."""
    cid = new_customer(ledger, email=email)
    sub = create_subscription(ledger, customer_id=cid, plan="scale-monthly", start=T0)
    with ledger.connect() as conn:
        inv = conn.execute(
            select(s.invoices).where(s.invoices.c.subscription_id == sub["id"])
        ).one()
    state = start_dunning(DunningInvoice(str(inv.id), str(cid), inv.amount_due_minor, "INR"), T0)
    if store:
        with ledger.begin() as conn:
            upsert_state(conn, inv.id, "simulated", T0, dunning_json=dump_dunning(state))
    return cid, sub["id"], inv, state


def _count(ledger, table) -> int:
    with ledger.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def _state_row(ledger, invoice_id: int):
    with ledger.connect() as conn:
        return conn.execute(
            select(payments_collection_state).where(
                payments_collection_state.c.invoice_id == invoice_id
            )
        ).one()


def test_advance_dunning_works_in_the_callers_transaction_and_says_what_it_did(
    ledger, new_customer
):
    _, sub_id, inv, _ = _failing(ledger, new_customer)
    at = T0 + timedelta(days=14, hours=1)
    with ledger.begin() as conn:
        cases = open_dunning_cases(conn)
        steps, report = advance_dunning(conn, cases, at)
        assert get_subscription(conn, sub_id)["status"] == "unpaid"
    assert [c.invoice_id for c in cases] == [inv.id]
    (step,) = steps
    assert step.effect is Effect.RESTRICT and step.state.done_days == (1, 3, 7, 14)
    assert [n.kind for n in step.notifications] == ["remind", "remind", "remind", "restrict"]
    assert report.to_dict() == {"notifications": 4, "mails_queued": 4, "restricted": [inv.id],
                                "canceled": [], "unpaid": [], "recovered": []}  # fmt: skip
    assert load_dunning(_state_row(ledger, inv.id).dunning_json) == step.state
    # fed its own result back, the run has nothing more to do
    with ledger.begin() as conn:
        again_steps, again = advance_dunning(conn, [replace(step.case, state=step.state)], at)
    assert again.notifications == 0 and again.restricted == [] and again_steps[0].effect is None
    assert run_dunning(ledger, at)["notifications"] == 0
    assert _count(ledger, payments_dunning_notifications) == _count(ledger, document_deliveries)


def test_a_rolled_back_transaction_leaves_nothing_behind(ledger, new_customer):
    _failing(ledger, new_customer)
    with pytest.raises(RuntimeError), ledger.begin() as conn:
        advance_dunning(conn, open_dunning_cases(conn), T0 + timedelta(days=22))
        raise RuntimeError("the caller's work failed")
    assert _count(ledger, payments_dunning_notifications) == 0
    assert _count(ledger, document_deliveries) == 0
    out = run_dunning(ledger, T0 + timedelta(days=22))
    assert out["notifications"] == 5 and len(out["canceled"]) == 1


def test_unchanged_processes_are_not_rewritten(ledger, new_customer):
    _, _, inv, _ = _failing(ledger, new_customer)
    run_dunning(ledger, T0 + timedelta(days=1, hours=1))
    first = _state_row(ledger, inv.id)
    assert run_dunning(ledger, T0 + timedelta(days=2))["notifications"] == 0
    assert _state_row(ledger, inv.id).updated_at == first.updated_at  # nothing to copy again
    run_dunning(ledger, T0 + timedelta(days=3, hours=1))
    assert _state_row(ledger, inv.id).updated_at > first.updated_at


def test_a_process_not_stored_yet_gets_its_row(ledger, new_customer):
    cid, _, inv, state = _failing(ledger, new_customer, store=False)
    retry = T0 + timedelta(days=2)
    case = DunningCase(inv.id, cid, inv.subscription_id, "simulated", state, "open",
                       inv.amount_due_minor, "INR", retry, inv.number, "ap@acme.example",
                       stored=False)  # fmt: skip
    with ledger.begin() as conn:
        advance_dunning(conn, [case], T0 + timedelta(hours=1))  # nothing due yet
    row = _state_row(ledger, inv.id)
    assert load_dunning(row.dunning_json) == state and row.next_retry_at == retry
    assert row.closed == 0 and row.gateway == "simulated"


def test_paid_and_written_off_processes_end(ledger, new_customer):
    cid, _, paid, paid_state = _failing(ledger, new_customer)
    cid2, _, gone, gone_state = _failing(ledger, new_customer, email="b@acme.example")
    cases = [
        DunningCase(paid.id, cid, paid.subscription_id, "simulated", paid_state, "paid", 0, "INR"),
        DunningCase(
            gone.id,
            cid2,
            gone.subscription_id,
            "simulated",
            gone_state,
            "uncollectible",
            gone.amount_due_minor,
            "INR",
        ),
    ]
    with ledger.begin() as conn:
        steps, report = advance_dunning(conn, list(reversed(cases)), T0 + timedelta(days=2))
    assert [st.case.invoice_id for st in steps] == sorted([paid.id, gone.id])  # invoice order
    assert {st.case.invoice_id: st.effect for st in steps} == {
        paid.id: Effect.RECOVERED,
        gone.id: Effect.CLOSE,
    }
    assert report.recovered == [paid.id] and report.mails_queued == 0  # nobody mailed
    assert report.notifications == 1  # "recovered" is recorded, written off is silent
    assert _state_row(ledger, paid.id).closed == _state_row(ledger, gone.id).closed == 1
    with ledger.connect() as conn:
        assert open_dunning_cases(conn) == []


def test_a_bad_address_keeps_the_notification_and_reports_the_mail(ledger, new_customer):
    cid, _, inv, state = _failing(ledger, new_customer)
    case = DunningCase(inv.id, cid, inv.subscription_id, "simulated", state, "open",
                       inv.amount_due_minor, "INR", email="ap@acme.example\r\nBcc: all@x")  # fmt: skip
    with ledger.begin() as conn:
        _, report = advance_dunning(conn, [case], T0 + timedelta(days=1, hours=1))
    assert report.notifications == 1 and report.mails_queued == 0
    assert "not a single e-mail address" in report.unmailed[inv.id]
    assert _count(ledger, document_deliveries) == 0
    with ledger.connect() as conn:
        assert conn.execute(select(payments_dunning_notifications.c.mail_delivery_id)).all() == [
            (None,)
        ]


def test_duplicate_cases_and_naive_times_are_refused(ledger, new_customer):
    _failing(ledger, new_customer)
    with ledger.begin() as conn:
        cases = open_dunning_cases(conn)
        with pytest.raises(DunningError, match=r"appear more than once"):
            advance_dunning(conn, cases + cases, T0 + timedelta(days=2))
        with pytest.raises(PaymentsError, match="timezone-aware"):
            advance_dunning(conn, cases, datetime(2025, 3, 5))
    assert _count(ledger, payments_dunning_notifications) == 0


def test_run_dunning_commits_batch_by_batch(ledger, new_customer, monkeypatch):
    for i in range(3):
        _failing(ledger, new_customer, email=f"c{i}@acme.example")
    monkeypatch.setattr(dunning_run, "BATCH", 2)
    out = run_dunning(ledger, T0 + timedelta(days=1, hours=1))
    assert out["notifications"] == out["mails_queued"] == 3
