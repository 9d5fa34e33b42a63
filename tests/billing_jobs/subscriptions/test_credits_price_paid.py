"""Issue #17: unused time is credited on the items in force at that instant, at the price the
customer actually paid (after the coupon, per line), and never twice for the same time.

Every figure is worked out by hand in the comments (demo catalog, Karnataka customer: CGST 9%
+ SGST 9%; April 2026 has 30 days, so on the 16th f = 15/30 = 1/2 and on the 23rd f = 8/30)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, text

from billing_jobs.ledger import schema as s
from billing_jobs.service import (
    cancel_subscription,
    change_subscription,
    create_subscription,
    get_customer,
    mark_invoice_paid,
    pause_subscription,
)

APR1 = datetime(2026, 4, 1, tzinfo=UTC)
APR16 = datetime(2026, 4, 16, tzinfo=UTC)  # f = 15/30 = 1/2
APR23 = datetime(2026, 4, 23, tzinfo=UTC)  # f = 8/30
APR27 = datetime(2026, 4, 27, tzinfo=UTC)  # f = 4/30


def _pay_open(engine, at):
    with engine.connect() as conn:
        ids = conn.execute(text("SELECT id FROM invoices WHERE status='open'")).scalars().all()
    for i in ids:
        mark_invoice_paid(engine, i, at=at)


def _net_taxable(engine, sub_id: int) -> int:
    """Taxable value charged minus taxable value credited for one subscription."""
    with engine.connect() as conn:
        charged = conn.execute(
            select(s.invoices.c.taxable_minor).where(s.invoices.c.subscription_id == sub_id)
        ).scalars()
        inv_ids = select(s.invoices.c.id).where(s.invoices.c.subscription_id == sub_id)
        credited = conn.execute(
            select(s.credit_notes.c.taxable_minor).where(s.credit_notes.c.invoice_id.in_(inv_ids))
        ).scalars()
        return sum(charged) - sum(credited)


def _growth_x3_launch20(ledger, new_customer) -> int:
    cid = new_customer(ledger)
    sub = create_subscription(
        ledger, customer_id=cid, plan="growth-monthly", quantity=3, coupon="LAUNCH20",
        trial_days=0, start=APR1,
    )  # fmt: skip
    _pay_open(ledger, APR1)
    return sub["id"]


def test_recurring_invoice_charges_the_discounted_price(ledger, new_customer) -> None:
    sub_id = _growth_x3_launch20(ledger, new_customer)
    with ledger.connect() as conn:
        (line,) = conn.execute(select(s.invoice_lines)).all()
    # 3 x 2,499.00 = 7,497.00; LAUNCH20 takes 1,499.40; taxable 5,997.60
    assert (line.amount_minor, line.discount_minor, line.taxable_minor) == (749700, 149940, 599760)
    assert _net_taxable(ledger, sub_id) == 599760


def test_proration_credits_the_price_paid_not_the_list_price(ledger, new_customer) -> None:
    sub_id = _growth_x3_launch20(ledger, new_customer)
    res = change_subscription(ledger, sub_id, at=APR16, plan="scale-monthly")
    inv = res["proration_invoice"]
    lines = [(x["amount_minor"], x["discount_minor"], x["taxable_minor"]) for x in inv["lines"]]
    # unused half of Growth x3 as paid: -(7,497.00, 1,499.40 off, 5,997.60) / 2
    # remaining half of Scale x3 with the coupon: 3 x 9,999.00 = 29,997.00 - 20% -> / 2
    assert lines == [(-374850, -74970, -299880), (1499850, 299970, 1199880)]
    assert (inv["subtotal_minor"], inv["discount_minor"], inv["taxable_minor"]) == (
        1125000,
        225000,
        900000,
    )
    assert inv["cgst_minor"] == inv["sgst_minor"] == 81000 and inv["total_minor"] == 1062000


def test_pause_after_a_change_credits_the_current_plan_once(ledger, new_customer) -> None:
    sub_id = _growth_x3_launch20(ledger, new_customer)
    change_subscription(ledger, sub_id, at=APR16, plan="scale-monthly")
    _pay_open(ledger, APR16)
    note = pause_subscription(ledger, sub_id, at=APR23)["credit_note"]
    (line,) = note["lines"]
    # 8/30 of Scale x3 as paid (23,997.60): 6,399.36; the Growth time was credited on the change
    assert "Scale" in line["description"] and "Growth" not in line["description"]
    assert (line["amount_minor"], line["discount_minor"], line["taxable_minor"]) == (
        799920,
        159984,
        639936,
    )
    assert note["cgst_minor"] == note["sgst_minor"] == 57594  # 9% of 6,399.36 = 575.9424
    # Growth for 15 days (2,998.80) + Scale for 7 days (11,998.80 - 6,399.36 = 5,599.44)
    assert _net_taxable(ledger, sub_id) == 299880 + 559944


def test_two_changes_then_cancel_credit_each_second_once(ledger, new_customer) -> None:
    sub_id = _growth_x3_launch20(ledger, new_customer)
    change_subscription(ledger, sub_id, at=APR16, plan="scale-monthly")
    _pay_open(ledger, APR16)
    back = change_subscription(ledger, sub_id, at=APR23, plan="growth-monthly")
    note = back["credit_note"]
    # credit 8/30 of Scale as paid (6,399.36), charge 8/30 of Growth as paid (1,599.36)
    assert [x["taxable_minor"] for x in note["lines"]] == [639936, -159936]
    assert note["taxable_minor"] == 480000 and note["total_minor"] == 566400
    cancel = cancel_subscription(ledger, sub_id, at=APR27)["credit_note"]
    (line,) = cancel["lines"]
    assert "Growth" in line["description"] and line["taxable_minor"] == 79968  # 4/30 of 5,997.60
    # Growth 15 days + Scale 7 days + Growth 4 days, each at the price paid
    assert _net_taxable(ledger, sub_id) == 299880 + 559944 + (159936 - 79968)


def test_seat_change_with_coupon_credits_each_line_at_its_discounted_price(
    ledger, new_customer
) -> None:
    cid = new_customer(ledger)
    sub = create_subscription(
        ledger, customer_id=cid, plan="scale-monthly", start=APR1, coupon="STARTUPINDIA",
        addons={"seats-monthly": 10},
    )  # fmt: skip
    # 9,999.00 + 10 seats (2,990.00) = 12,989.00, 10% off: lines 8,999.10 and 2,691.00
    res = change_subscription(ledger, sub["id"], at=APR16, addons={"seats-monthly": 12})
    lines = res["proration_invoice"]["lines"]
    # 12 seats = 3,488.00 (graduated), 10% off = 3,139.20; halves of old and new seat lines
    assert [(x["amount_minor"], x["taxable_minor"]) for x in lines] == [
        (-149500, -134550),
        (174400, 156960),
    ]
    assert "seats" in lines[0]["description"].lower()


def test_downgrade_credit_at_the_price_paid_goes_to_the_balance(ledger, new_customer) -> None:
    cid = new_customer(ledger)
    sub = create_subscription(
        ledger, customer_id=cid, plan="scale-monthly", coupon="LAUNCH20", start=APR1
    )
    _pay_open(ledger, APR1)
    note = change_subscription(ledger, sub["id"], at=APR16, plan="growth-monthly")["credit_note"]
    # half of 7,999.20 paid for Scale minus half of 1,999.20 for Growth: 3,000.00 + 18% GST
    assert [x["taxable_minor"] for x in note["lines"]] == [399960, -99960]
    assert note["taxable_minor"] == 300000 and note["total_minor"] == 354000
    assert get_customer(ledger, cid)["credit_balance_minor"] == 354000


def test_pause_without_a_change_credits_the_invoice_lines(small, new_customer) -> None:
    cid = new_customer(small)
    sub = create_subscription(small, customer_id=cid, plan="pro-20", start=APR1)
    _pay_open(small, APR1)
    note = pause_subscription(small, sub["id"], at=APR16)["credit_note"]
    assert note["taxable_minor"] == 1000 and note["lines"][0]["invoice_line_id"] is not None
    with small.connect() as conn:
        (charge,) = conn.execute(select(s.subscription_charges)).all()
    assert charge.credited_from == APR16 and charge.credit_note_id == note["id"]
