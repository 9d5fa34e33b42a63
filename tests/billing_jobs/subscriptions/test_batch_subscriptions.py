"""Batched sign-ups and transitions: the same rows and refusals as the per-row service calls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from billing_jobs.catalog import DEMO_CATALOG, load_catalog
from billing_jobs.customers import create_customer
from billing_jobs.errors import BillingError, NotFoundError, ValidationError
from billing_jobs.ledger import upgrade_ledger
from billing_jobs.subscriptions.batch import (
    NewCustomer,
    NewSubscription,
    create_customers,
    create_subscriptions,
    transition_subscriptions,
)
from billing_jobs.subscriptions.service import (
    cancel_subscription,
    create_subscription,
    transition_subscription,
)
from billing_jobs.subscriptions.state import get_subscription

T0 = datetime(2025, 4, 1, 9, 30, tzinfo=UTC)
GSTIN_KA = "29ABCDE1234F1ZW"

CUSTOMERS = [
    NewCustomer("Acme Pvt Ltd", "29", "INR", T0, email="a@example.in", gstin=GSTIN_KA,
                external_ref="acme"),
    NewCustomer("  ", "29", "INR", T0),  # empty name
    NewCustomer("Bad State", "00", "INR", T0),
    NewCustomer("Bad GSTIN", "29", "INR", T0, gstin="29ABCDE1234F1ZX"),
    NewCustomer("Export With GSTIN", "96", "USD", T0, gstin=GSTIN_KA, tax_status="export"),
    NewCustomer("SEZ Without GSTIN", "29", "INR", T0, tax_status="sez"),
    NewCustomer("Export Wrong State", "29", "USD", T0, tax_status="export"),
    NewCustomer("Regular Abroad", "96", "USD", T0),
    NewCustomer("Odd Tax", "29", "INR", T0, tax_status="charity"),
    NewCustomer("No Currency", "29", "XYZ1", T0),
    NewCustomer("Naive Time", "29", "INR", T0.replace(tzinfo=None)),
    NewCustomer("Acme Again", "29", "INR", T0, external_ref="acme"),  # duplicate in the batch
    NewCustomer("Globex Inc", "96", "USD", T0, tax_status="export", locale="en_US"),
    NewCustomer("Initech", "27", "INR", T0 + timedelta(hours=1), email="i@example.in"),
]  # fmt: skip


def _ledger(path: Path) -> Engine:
    engine = upgrade_ledger(f"sqlite:///{path}")
    load_catalog(engine, DEMO_CATALOG, now=T0 - timedelta(days=1))
    return engine


def _rows(engine: Engine, table: str) -> list[tuple]:
    with engine.connect() as conn:
        return conn.execute(text(f"select * from {table} order by 1, 2")).all()


def _one_by_one(engine: Engine, customers: list[NewCustomer]) -> list[object]:
    out: list[object] = []
    for c in customers:
        try:
            out.append(create_customer(engine, name=c.name, state_code=c.state_code,
                                       currency=c.currency, now=c.now, email=c.email,
                                       gstin=c.gstin, tax_status=c.tax_status, locale=c.locale,
                                       external_ref=c.external_ref)["id"])  # fmt: skip
        except ValidationError as e:
            out.append(e)
    return out


def test_create_customers_matches_create_customer_row_for_row(tmp_path):
    one, many = _ledger(tmp_path / "one.sqlite"), _ledger(tmp_path / "many.sqlite")
    expected = _one_by_one(one, CUSTOMERS)
    with many.begin() as conn:
        got = create_customers(conn, CUSTOMERS)
    assert [type(x) for x in got] == [type(x) for x in expected]
    assert [str(x) for x in got if isinstance(x, Exception)] == [
        str(x) for x in expected if isinstance(x, Exception)
    ]
    assert sum(isinstance(x, int) for x in got) == 3  # the valid rows are kept, not lost
    assert _rows(one, "customers") == _rows(many, "customers")
    with many.begin() as conn:  # external_ref already in the ledger
        (dup,) = create_customers(conn, [CUSTOMERS[0]])
    assert isinstance(dup, ValidationError) and "acme" in str(dup)


SUBS = [
    NewSubscription(1, "scale-monthly", T0),
    NewSubscription(2, "growth-monthly", T0, quantity=4),  # 14-day trial
    NewSubscription(1, "scale-yearly", T0, addons={"seats-yearly": 5}),
    NewSubscription(2, "scale-monthly", T0 + timedelta(hours=2), coupon="LAUNCH20"),
    NewSubscription(1, "no-such-plan", T0),
    NewSubscription(1, "seats-monthly", T0),  # an add-on is not a base plan
    NewSubscription(1, "scale-monthly", T0, quantity=0),
    NewSubscription(77, "scale-monthly", T0),  # no such customer
    NewSubscription(1, "scale-monthly", T0, coupon="NOPE"),
    NewSubscription(2, "scale-quarterly", T0 + timedelta(hours=2), trial_days=0),
    NewSubscription(1, "scale-monthly", T0 + timedelta(hours=3), trial_days=7),
]


def test_create_subscriptions_matches_create_subscription(tmp_path):
    one, many = _ledger(tmp_path / "one.sqlite"), _ledger(tmp_path / "many.sqlite")
    people = [CUSTOMERS[0], CUSTOMERS[13]]
    _one_by_one(one, people)
    with many.begin() as conn:
        create_customers(conn, people)
    expected: list[object] = []
    for r in SUBS:
        try:
            expected.append(create_subscription(
                one, customer_id=r.customer_id, plan=r.plan, start=r.start, quantity=r.quantity,
                addons=r.addons, coupon=r.coupon, trial_days=r.trial_days)["id"])  # fmt: skip
        except BillingError as e:
            expected.append(e)
    with many.begin() as conn:
        got = create_subscriptions(conn, SUBS)
    assert [type(x) for x in got] == [type(x) for x in expected]
    assert [str(x) for x in got] == [str(x) for x in expected]
    for table in ("subscriptions", "subscription_items", "subscription_events", "invoices",
                  "invoice_lines", "invoice_sequences", "customer_balance_transactions"):  # fmt: skip
        assert _rows(one, table) == _rows(many, table), table
    assert len(_rows(many, "invoices")) == 4  # the active ones were invoiced at their start


def test_transition_subscriptions_in_order_and_refusals(tmp_path):
    engine = _ledger(tmp_path / "l.sqlite")
    with engine.begin() as conn:
        create_customers(conn, [CUSTOMERS[0]])
        a, b, c = create_subscriptions(conn, [NewSubscription(1, "scale-monthly", T0)] * 3)
    cancel_subscription(engine, c, at=T0 + timedelta(hours=1))
    t = T0 + timedelta(days=2)
    with engine.begin() as conn:
        out = transition_subscriptions(conn, [
            (a, "past_due", t, "payment_failed"), (b, "past_due", t, "payment_failed"),
            (a, "active", t + timedelta(hours=1), "payment_recovered"),
            (c, "past_due", t, "payment_failed"),  # canceled: refused
            (b, "paused", t, "x"),  # pausing has its own function
        ])  # fmt: skip
    assert out == [True, True, True, False, False]
    sa, sb = get_subscription(engine, a), get_subscription(engine, b)
    assert (sa["status"], sb["status"]) == ("active", "past_due")
    assert [e["kind"] for e in sa["events"]][-2:] == ["status_changed", "status_changed"]
    assert '"payment_recovered"' in sa["events"][-1]["detail_json"]
    # Same answer as the per-row function on the next step.
    transition_subscription(engine, b, "unpaid", at=t + timedelta(days=1), reason="dunning")
    before = _rows(engine, "subscription_events")
    with engine.begin() as conn, pytest.raises(ValidationError, match="backdated"):
        transition_subscriptions(conn, [(a, "past_due", t + timedelta(days=3), "ok"),
                                        (b, "active", t, "late news")])  # fmt: skip
    assert _rows(engine, "subscription_events") == before  # nothing of the batch was written
    with engine.begin() as conn, pytest.raises(NotFoundError):
        transition_subscriptions(conn, [(999, "active", t, "x")])


def test_next_action_follows_the_status(tmp_path):
    """unpaid stops invoicing: next_action_at moves exactly as transition_subscription moves it."""
    one, many = _ledger(tmp_path / "one.sqlite"), _ledger(tmp_path / "many.sqlite")
    for eng in (one, many):
        with eng.begin() as conn:
            create_customers(conn, [CUSTOMERS[0]])
            create_subscriptions(conn, [NewSubscription(1, "scale-monthly", T0)])
    t = T0 + timedelta(days=1)
    transition_subscription(one, 1, "unpaid", at=t, reason="r")
    with many.begin() as conn:
        assert transition_subscriptions(conn, [(1, "unpaid", t, "r")]) == [True]
    assert _rows(one, "subscriptions") == _rows(many, "subscriptions")
    assert _rows(one, "subscription_events") == _rows(many, "subscription_events")
