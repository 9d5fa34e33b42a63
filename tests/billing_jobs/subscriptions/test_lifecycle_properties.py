"""Property test: random sequences of lifecycle operations and billing runs keep the ledger's
invariants (one invoice per period, gapless numbers, consistent totals, credit never negative)."""

from __future__ import annotations

import contextlib
import shutil
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from billing_jobs.catalog import DEMO_CATALOG, load_catalog
from billing_jobs.customers import create_customer
from billing_jobs.errors import BillingError
from billing_jobs.ledger import make_engine
from billing_jobs.ledger import schema as s
from billing_jobs.service import (
    cancel_subscription,
    change_subscription,
    create_subscription,
    get_subscription,
    mark_invoice_paid,
    pause_subscription,
    resume_subscription,
    run_billing,
)

T0 = datetime(2026, 1, 7, 3, tzinfo=UTC)
OPS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "bill",
                "upgrade",
                "downgrade",
                "seats",
                "pause",
                "resume",
                "cancel",
                "cancel_end",
                "pay",
            ]
        ),
        st.integers(min_value=1, max_value=40 * 86400),
        st.integers(min_value=0, max_value=60),
    ),
    min_size=1,
    max_size=10,
)


def _apply(engine, sub_id: int, op: str, at: datetime, n: int) -> None:
    if op == "bill":
        run_billing(engine, at)
    elif op == "upgrade":
        change_subscription(engine, sub_id, at=at, plan="scale-monthly")
    elif op == "downgrade":
        change_subscription(engine, sub_id, at=at, plan="starter-monthly",
                            when="now" if n % 2 else "period_end")  # fmt: skip
    elif op == "seats":
        change_subscription(engine, sub_id, at=at, addons={"seats-monthly": n})
    elif op == "pause":
        pause_subscription(engine, sub_id, at=at)
    elif op == "resume":
        resume_subscription(engine, sub_id, at=at)
    elif op == "cancel":
        cancel_subscription(engine, sub_id, at=at)
    elif op == "cancel_end":
        cancel_subscription(engine, sub_id, at=at, at_period_end=True)
    elif op == "pay":
        with engine.connect() as conn:
            ids = (
                conn.execute(select(s.invoices.c.id).where(s.invoices.c.status == "open"))
                .scalars()
                .all()
            )
            conn.rollback()
        for inv in ids:
            mark_invoice_paid(engine, inv, at=at)


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=OPS)
def test_random_lifecycles_keep_invariants(ops, sqlite_template, tmp_path_factory) -> None:
    path = tmp_path_factory.mktemp("prop") / "ledger.sqlite"
    shutil.copy(sqlite_template, path)
    engine = make_engine(f"sqlite:///{path}")
    try:
        load_catalog(engine, DEMO_CATALOG, now=T0)
        cid = create_customer(engine, name="P", state_code="27", currency="INR", now=T0)["id"]
        sub = create_subscription(engine, customer_id=cid, plan="growth-monthly", start=T0,
                                  trial_days=0)["id"]  # fmt: skip
        at = T0
        for op, delta, n in ops:
            at += timedelta(seconds=delta)
            # Refused operations (illegal transitions, no-op changes) are part of the game.
            with contextlib.suppress(BillingError):
                _apply(engine, sub, op, at, n)
        at += timedelta(days=70)
        run_billing(engine, at)
        _check_invariants(engine, sub)
    finally:
        engine.dispose()


def _check_invariants(engine, sub_id: int) -> None:
    inv, line, cn = s.invoices, s.invoice_lines, s.credit_notes
    with engine.connect() as conn:
        invoices = conn.execute(select(inv)).all()
        recurring = [(i.subscription_id, i.period_start) for i in invoices if i.kind == "recurring"]
        assert len(recurring) == len(set(recurring))
        by_fy: dict[tuple[str, str], list[int]] = {}
        for i in invoices:
            series, fy, n = i.number.split("/")
            by_fy.setdefault((series, fy), []).append(int(n))
            assert i.taxable_minor == i.subtotal_minor - i.discount_minor
            assert i.total_minor == i.taxable_minor + i.tax_minor
            assert i.tax_minor == i.cgst_minor + i.sgst_minor + i.igst_minor
            assert 0 <= i.credit_applied_minor <= max(i.total_minor, 0)
            assert i.amount_credited_minor <= i.total_minor
            sums = conn.execute(
                select(func.sum(line.c.amount_minor), func.sum(line.c.igst_minor)).where(
                    line.c.invoice_id == i.id
                )
            ).one()
            assert tuple(sums) == (i.subtotal_minor, i.igst_minor)
        # A note for a period's unused time is booked on the period's invoices (the recurring
        # one, then its prorations), each up to its total; all of them together carry every note.
        notes = conn.execute(select(func.coalesce(func.sum(cn.c.total_minor), 0))).scalar()
        assert notes == sum(i.amount_credited_minor for i in invoices)
        for numbers in by_fy.values():
            assert sorted(numbers) == list(range(1, len(numbers) + 1))
        cn_numbers = sorted(int(n.rsplit("/", 1)[1]) for n in conn.execute(
            select(cn.c.number)).scalars())  # fmt: skip
        assert cn_numbers == list(range(1, len(cn_numbers) + 1))
        balance = conn.execute(
            select(func.coalesce(func.sum(s.customer_balance_transactions.c.amount_minor), 0))
        ).scalar()
        assert balance >= 0
        conn.rollback()
    state = get_subscription(engine, sub_id)
    if state["status"] == "canceled":
        canceled_at = datetime.fromisoformat(state["canceled_at"])
        assert all(p < canceled_at for sid, p in recurring if sid == sub_id)
