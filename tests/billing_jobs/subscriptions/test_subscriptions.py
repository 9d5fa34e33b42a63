"""Subscription lifecycle: trials, prorated changes, scheduled changes, pause, cancel, errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from billing_jobs.errors import (
    IdempotencyConflictError,
    InvalidGSTINError,
    InvalidTransitionError,
    NotFoundError,
    ValidationError,
)
from billing_jobs.ledger import schema as s
from billing_jobs.service import (
    cancel_subscription,
    change_subscription,
    create_customer,
    create_subscription,
    get_customer,
    get_invoice,
    get_subscription,
    mark_invoice_paid,
    pause_subscription,
    preview_invoice,
    resume_subscription,
    run_billing,
    transition_subscription,
)

APR1 = datetime(2026, 4, 1, tzinfo=UTC)
HALF = datetime(2026, 4, 16, tzinfo=UTC)  # April has 30 days: exactly halfway, 15 days left


def _invoices(engine, sub_id):
    with engine.connect() as conn:
        q = select(s.invoices).where(s.invoices.c.subscription_id == sub_id)
        return conn.execute(q.order_by(s.invoices.c.id)).all()


def _pay_all(engine, at=APR1):
    with engine.connect() as conn:
        ids = conn.execute(text("SELECT id FROM invoices WHERE status='open'")).scalars().all()
    for i in ids:
        mark_invoice_paid(engine, i, at=at)


def test_stripe_upgrade_example_through_the_api(small, new_customer) -> None:
    cid = new_customer(small)
    sub = create_subscription(small, customer_id=cid, plan="basic-10", start=APR1)
    res = change_subscription(small, sub["id"], at=HALF, plan="pro-20")
    inv = res["proration_invoice"]
    assert [x["amount_minor"] for x in inv["lines"]] == [-500, 1000]
    assert inv["taxable_minor"] == 500 and inv["cgst_minor"] == inv["sgst_minor"] == 45
    assert inv["kind"] == "proration" and inv["number"].startswith("INV/2627/")
    assert res["subscription"]["items"][0]["plan"] == "pro-20"


def test_kill_bill_upgrade_example(small, new_customer) -> None:
    cid = new_customer(small)
    sub = create_subscription(small, customer_id=cid, plan="pro-20", start=APR1)
    res = change_subscription(small, sub["id"], at=HALF, plan="max-30")
    assert [x["amount_minor"] for x in res["proration_invoice"]["lines"]] == [-1000, 1500]


def test_downgrade_credit_becomes_balance_used_by_next_invoice(small, new_customer) -> None:
    cid = new_customer(small)
    sub = create_subscription(small, customer_id=cid, plan="max-30", start=APR1)
    _pay_all(small)
    res = change_subscription(small, sub["id"], at=HALF, plan="basic-10")
    note = res["credit_note"]
    assert res["proration_invoice"] is None
    # credit 15.00 - debit 5.00 = 10.00 taxable, GST reversed (0.90 + 0.90)
    assert note["taxable_minor"] == 1000 and note["cgst_minor"] == note["sgst_minor"] == 90
    assert note["total_minor"] == 1180 and note["number"] == "CN/2627/000001"
    assert get_customer(small, cid)["credit_balance_minor"] == 1180
    run_billing(small, datetime(2026, 5, 1, tzinfo=UTC))
    may = _invoices(small, sub["id"])[-1]
    assert may.subtotal_minor == 1000 and may.total_minor == 1180
    assert may.credit_applied_minor == 1180 and may.amount_due_minor == 0 and may.status == "paid"
    assert get_customer(small, cid)["credit_balance_minor"] == 0


def test_quantity_change_prorates_per_seat(ledger, new_customer) -> None:
    cid = new_customer(ledger)
    sub = create_subscription(
        ledger, customer_id=cid, plan="scale-monthly", start=APR1, addons={"seats-monthly": 10}
    )
    first = _invoices(ledger, sub["id"])[0]
    assert first.subtotal_minor == 999900 + 10 * 29900
    res = change_subscription(ledger, sub["id"], at=HALF, addons={"seats-monthly": 12})
    lines = res["proration_invoice"]["lines"]
    # 10 seats = 2990.00, 12 seats = 10*299 + 2*249 = 3488.00 (graduated); halves of each
    assert [x["amount_minor"] for x in lines] == [-149500, 174400]


def test_change_at_period_end_applies_at_renewal(small, new_customer) -> None:
    cid = new_customer(small)
    sub = create_subscription(small, customer_id=cid, plan="max-30", start=APR1)
    res = change_subscription(small, sub["id"], at=HALF, plan="basic-10", when="period_end")
    assert res["proration_invoice"] is None and res["credit_note"] is None
    assert res["subscription"]["items"][0]["plan"] == "max-30"
    run_billing(small, datetime(2026, 5, 1, tzinfo=UTC))
    assert [i.subtotal_minor for i in _invoices(small, sub["id"])] == [3000, 1000]
    kinds = [e["kind"] for e in get_subscription(small, sub["id"])["events"]]
    assert kinds == ["created", "change_scheduled", "plan_changed", "renewed"]


def test_trial_then_billing(ledger, new_customer) -> None:
    cid = new_customer(ledger)
    sub = create_subscription(ledger, customer_id=cid, plan="growth-monthly", start=APR1)
    assert sub["status"] == "trialing" and _invoices(ledger, sub["id"]) == []
    run_billing(ledger, APR1 + timedelta(days=13))
    assert _invoices(ledger, sub["id"]) == []
    run_billing(ledger, APR1 + timedelta(days=14))
    (inv,) = _invoices(ledger, sub["id"])
    assert inv.period_start == APR1 + timedelta(days=14)
    assert get_subscription(ledger, sub["id"])["status"] == "active"


def test_pause_stops_invoices_and_resume_restarts_cycle(small, new_customer) -> None:
    cid = new_customer(small)
    sub = create_subscription(small, customer_id=cid, plan="pro-20", start=APR1)
    _pay_all(small)
    res = pause_subscription(small, sub["id"], at=HALF)
    assert res["subscription"]["status"] == "paused"
    assert res["credit_note"]["taxable_minor"] == 1000  # unused half credited
    run_billing(small, datetime(2026, 9, 1, tzinfo=UTC))
    assert len(_invoices(small, sub["id"])) == 1
    resumed = resume_subscription(small, sub["id"], at=datetime(2026, 9, 3, tzinfo=UTC))
    assert resumed["subscription"]["status"] == "active"
    invs = _invoices(small, sub["id"])
    assert len(invs) == 2 and invs[1].period_start == datetime(2026, 9, 3, tzinfo=UTC)
    assert invs[1].credit_applied_minor == 1180  # the pause credit is consumed


def test_cancel_now_and_at_period_end(small, new_customer) -> None:
    cid = new_customer(small)
    a = create_subscription(small, customer_id=cid, plan="pro-20", start=APR1)
    b = create_subscription(small, customer_id=cid, plan="pro-20", start=APR1)
    now = cancel_subscription(small, a["id"], at=HALF)
    assert now["subscription"]["status"] == "canceled"
    assert now["credit_note"]["reason"] == "cancellation"
    # the April invoice was unpaid, so the credit reduced what is due instead of adding credit
    first = _invoices(small, a["id"])[0]
    assert first.amount_due_minor == 2360 - 1180 and first.status == "open"
    later = cancel_subscription(small, b["id"], at=HALF, at_period_end=True)
    assert later["subscription"]["status"] == "active"
    run_billing(small, datetime(2026, 8, 1, tzinfo=UTC))
    assert get_subscription(small, b["id"])["status"] == "canceled"
    assert len(_invoices(small, a["id"])) == len(_invoices(small, b["id"])) == 1


def test_illegal_transitions_are_refused(small, new_customer) -> None:
    cid = new_customer(small)
    sub = create_subscription(small, customer_id=cid, plan="pro-20", start=APR1)
    with pytest.raises(InvalidTransitionError, match=r"not paused|active -> active"):
        resume_subscription(small, sub["id"], at=HALF)
    with pytest.raises(InvalidTransitionError, match="incomplete"):
        transition_subscription(small, sub["id"], "incomplete", at=HALF, reason="x")
    past_due = transition_subscription(small, sub["id"], "past_due", at=HALF, reason="declined")
    assert past_due["status"] == "past_due"
    cancel_subscription(small, sub["id"], at=HALF)
    for action in (
        lambda: change_subscription(small, sub["id"], at=HALF, plan="max-30"),
        lambda: pause_subscription(small, sub["id"], at=HALF),
        lambda: cancel_subscription(small, sub["id"], at=HALF),
        lambda: transition_subscription(small, sub["id"], "active", at=HALF, reason="x"),
    ):
        with pytest.raises(InvalidTransitionError, match="canceled"):
            action()
    history = get_subscription(small, sub["id"])["events"]
    assert [e["to_status"] for e in history] == ["active", "past_due", "canceled"]


def _snapshot(engine):
    with engine.connect() as conn:
        return {
            t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar()
            for t in (
                "customers",
                "subscriptions",
                "subscription_items",
                "subscription_events",
                "invoices",
                "credit_notes",
                "invoice_sequences",
            )
        }


def test_bad_input_is_refused_and_nothing_written(ledger, new_customer) -> None:
    inr = new_customer(ledger)
    usd = new_customer(ledger, currency="USD", name="US Buyer", state_code="96",
                       tax_status="export")  # fmt: skip
    sub = create_subscription(ledger, customer_id=inr, plan="scale-monthly", start=APR1)
    before = _snapshot(ledger)
    cases = [
        (NotFoundError, "unknown plan", dict(customer_id=inr, plan="platinum")),
        (NotFoundError, "customer 999", dict(customer_id=999, plan="scale-monthly")),
        (ValidationError, "quantity", dict(customer_id=inr, plan="scale-monthly", quantity=0)),
        (ValidationError, "quantity", dict(customer_id=inr, plan="scale-monthly", quantity=-2)),
        (ValidationError, "add-on", dict(customer_id=inr, plan="seats-monthly")),
        (ValidationError, "base plan", dict(customer_id=inr, plan="scale-monthly",
                                            addons={"growth-monthly": 1})),
        (ValidationError, "bills every 1 year", dict(customer_id=inr, plan="scale-monthly",
                                                 addons={"seats-yearly": 1})),
        (NotFoundError, "coupon", dict(customer_id=inr, plan="scale-monthly", coupon="FREE")),
        (ValidationError, "coupon 'DIWALI500' is in INR",
         dict(customer_id=usd, plan="scale-monthly", coupon="DIWALI500")),
    ]  # fmt: skip
    for exc, message, kwargs in cases:
        with pytest.raises(exc, match=message):
            create_subscription(ledger, start=APR1, **kwargs)
    for exc, message, kwargs in [
        (ValidationError, "quantity", dict(quantity=0)),
        (ValidationError, "interval", dict(plan="scale-yearly")),
        (NotFoundError, "unknown plan", dict(plan="nope")),
        (ValidationError, "nothing to change", dict()),
        (ValidationError, "when", dict(plan="growth-monthly", when="tomorrow")),
    ]:
        with pytest.raises(exc, match=message):
            change_subscription(ledger, sub["id"], at=HALF, **kwargs)
    with pytest.raises(NotFoundError, match="subscription 4242"):
        change_subscription(ledger, 4242, at=HALF, quantity=2)
    with pytest.raises(ValidationError, match="timezone-aware"):
        change_subscription(ledger, sub["id"], at=HALF.replace(tzinfo=None), quantity=2)
    base = dict(name="X", currency="INR", now=APR1)
    for exc, message, kwargs in [
        (InvalidGSTINError, "checksum", dict(state_code="27", gstin="27AAPFU0939F1ZW")),
        (InvalidGSTINError, "state code", dict(state_code="27", gstin="99AAPFU0939F1ZH")),
        (ValidationError, "state code", dict(state_code="28")),
        (ValidationError, "currency", dict(state_code="29", currency="RUPEES")),
        (ValidationError, "tax_status", dict(state_code="29", tax_status="exempt")),
        (ValidationError, "SEZ", dict(state_code="29", tax_status="sez")),
        (ValidationError, "name", dict(state_code="29", name="  ")),
    ]:
        with pytest.raises(exc, match=message):
            create_customer(ledger, **(base | kwargs))
    assert _snapshot(ledger) == before


def test_plan_currency_must_match_customer(small, new_customer, count) -> None:
    usd = new_customer(small, currency="USD", state_code="96", tax_status="export")
    with pytest.raises(ValidationError, match="no USD price"):
        create_subscription(small, customer_id=usd, plan="pro-20", start=APR1)
    assert count(small, "subscriptions") == 0


def test_idempotent_create(small, new_customer, count) -> None:
    cid = new_customer(small)
    a = create_subscription(small, customer_id=cid, plan="pro-20", start=APR1,
                            idempotency_key="create-1")  # fmt: skip
    b = create_subscription(small, customer_id=cid, plan="pro-20", start=APR1,
                            idempotency_key="create-1")  # fmt: skip
    assert a == b and count(small, "subscriptions") == 1 and count(small, "invoices") == 1
    with pytest.raises(IdempotencyConflictError):
        create_subscription(small, customer_id=cid, plan="max-30", start=APR1,
                            idempotency_key="create-1")  # fmt: skip


def test_preview_shows_prorations_without_writing(small, new_customer, count) -> None:
    cid = new_customer(small)
    sub = create_subscription(small, customer_id=cid, plan="basic-10", start=APR1)
    before = (count(small, "invoices"), count(small, "subscription_events"))
    p = preview_invoice(small, sub["id"], at=HALF, change={"plan": "pro-20"})
    assert [x["amount_minor"] for x in p["proration_invoice"]["lines"]] == [-500, 1000]
    assert p["proration_invoice"]["number"] is None
    assert p["upcoming_invoice"]["subtotal_minor"] == 2000
    assert p["upcoming_invoice"]["period_start"] == "2026-05-01T00:00:00+00:00"
    assert p["amount_due_now_minor"] == 590
    assert (count(small, "invoices"), count(small, "subscription_events")) == before
    plain = preview_invoice(small, sub["id"], at=HALF)
    assert (
        plain["proration_invoice"] is None and plain["upcoming_invoice"]["subtotal_minor"] == 1000
    )
    real = change_subscription(small, sub["id"], at=HALF, plan="pro-20")
    assert real["proration_invoice"]["number"] == "INV/2627/000002"  # the preview used none
    assert get_invoice(small, real["proration_invoice"]["id"])["total_minor"] == 590


def test_out_of_order_operations_are_refused(small, new_customer, count) -> None:
    cid = new_customer(small)
    sub = create_subscription(small, customer_id=cid, plan="pro-20", start=APR1)
    change_subscription(small, sub["id"], at=HALF, plan="max-30")
    before = _snapshot(small)
    earlier = HALF - timedelta(days=3)
    for action in (
        lambda: change_subscription(small, sub["id"], at=earlier, plan="basic-10"),
        lambda: cancel_subscription(small, sub["id"], at=earlier),
        lambda: pause_subscription(small, sub["id"], at=earlier),
        lambda: transition_subscription(small, sub["id"], "past_due", at=earlier, reason="x"),
    ):
        with pytest.raises(ValidationError, match="backdated"):
            action()
    assert _snapshot(small) == before
    # a billing run for an earlier as_of than one already done creates nothing
    run_billing(small, datetime(2026, 6, 2, tzinfo=UTC))
    assert run_billing(small, datetime(2026, 5, 2, tzinfo=UTC)).invoices_created == 0
