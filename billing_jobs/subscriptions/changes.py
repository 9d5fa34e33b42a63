"""Plan and quantity changes: prorated now (credit the unused time, charge the new items) or
scheduled at period end; and the unused-time credit that cancel and pause also issue."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from billing_jobs.catalog.snapshot import CatalogSnapshot, load_snapshot
from billing_jobs.customers import credit_balance, customer_row
from billing_jobs.errors import InvalidTransitionError, ValidationError
from billing_jobs.invoicing.builder import CustomerTax, LineInput, build_invoice
from billing_jobs.invoicing.credit_notes import CreditLine, issue_credit_note, unused_time_lines
from billing_jobs.invoicing.invoices import get_invoice
from billing_jobs.invoicing.store import insert_invoices
from billing_jobs.ledger import schema as s
from billing_jobs.ledger.idempotency import run_idempotent
from billing_jobs.ledger.session import Target, write_conn
from billing_jobs.periods import IST, require_aware
from billing_jobs.subscriptions.lifecycle import INVOICING, Event, SubState
from billing_jobs.subscriptions.proration import prorate_minor, proration_factor
from billing_jobs.subscriptions.state import (
    catch_up,
    get_subscription,
    positive_quantity,
    record_events,
    resolve_items,
    save_state,
)
from billing_jobs.tax.gst import gst_rate_bp


def recurring_invoice_row(conn: Connection, st: SubState) -> Any:
    q = select(s.invoices).where(
        s.invoices.c.subscription_id == st.id,
        s.invoices.c.kind == "recurring",
        s.invoices.c.period_start == st.current_period_start,
    )
    return conn.execute(q).first()


def _prorate(
    conn: Connection,
    st: SubState,
    new_items: list[tuple[int, int]],
    at: datetime,
    catalog: CatalogSnapshot,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Proration at `at`: -old*f and +new*f per changed item. A positive net is invoiced now;
    a negative net becomes a credit note (GST reversed) whose value goes to customer credit."""
    if not (
        st.status in INVOICING
        and st.billed_period_start == st.current_period_start
        and st.current_period_start <= at < st.current_period_end
    ):
        return None, None
    f = proration_factor(st.current_period_start, st.current_period_end, at)
    old, new = dict(st.items), dict(new_items)
    when = at.astimezone(IST).strftime("%d %b %Y %H:%M")
    lines: list[LineInput] = []
    for pid in sorted(set(old) | set(new)):
        oq, nq = old.get(pid, 0), new.get(pid, 0)
        if oq == nq:
            continue
        plan = catalog.plan(pid)
        if oq:
            lines.append(
                LineInput(
                    "proration",
                    f"Unused time on {plan.name} × {oq} after {when}",
                    pid,
                    plan.sac,
                    oq,
                    -prorate_minor(plan.amount(st.currency, oq), f),
                    at,
                    st.current_period_end,
                )
            )
        if nq:
            lines.append(
                LineInput(
                    "proration",
                    f"Remaining time on {plan.name} × {nq} after {when}",
                    pid,
                    plan.sac,
                    nq,
                    prorate_minor(plan.amount(st.currency, nq), f),
                    at,
                    st.current_period_end,
                )
            )
    net = sum(x.amount_minor for x in lines)
    if net == 0:
        return None, None
    cust = customer_row(conn, st.customer_id)
    tax = CustomerTax(cust.state_code, cust.gstin, cust.tax_status)
    if net > 0:
        draft = build_invoice(
            kind="proration",
            customer_id=st.customer_id,
            subscription_id=st.id,
            currency=st.currency,
            issued_at=at,
            lines=lines,
            customer=tax,
            supplier_gstin=catalog.supplier_gstin or "",
            credit_available_minor=credit_balance(conn, st.customer_id, st.currency),
            period_start=at,
            period_end=st.current_period_end,
        )
        (inv_id,) = insert_invoices(
            conn, [draft], finalize=True, created_at=at, prefix=catalog.invoice_prefix
        )
        return get_invoice(conn, inv_id), None
    inv = recurring_invoice_row(conn, st)
    if inv is None or inv.status not in ("open", "paid"):
        return None, None  # nothing was charged for this period, so nothing to credit
    on = at.astimezone(IST).date()
    credit_lines = [
        CreditLine(x.description, x.sac, -x.amount_minor, gst_rate_bp(x.sac, on)) for x in lines
    ]
    note = issue_credit_note(conn, inv.id, credit_lines, reason="downgrade", at=at)
    return None, note


def change_subscription(
    target: Target,
    sub_id: int,
    *,
    at: datetime,
    plan: str | None = None,
    quantity: int | None = None,
    addons: Mapping[str, int] | None = None,
    when: str = "now",
    idempotency_key: str | None = None,
    catalog: CatalogSnapshot | None = None,
) -> dict[str, Any]:
    """Change plan, quantity or add-ons, now (per-second proration) or at period end.
    `catalog` (here and in cancel/pause/resume) saves re-reading an unchanged catalog."""
    at = require_aware(at, "at")
    if when not in ("now", "period_end"):
        raise ValidationError(f"when must be 'now' or 'period_end', got {when!r}")
    if plan is None and quantity is None and not addons:
        raise ValidationError("nothing to change: give plan, quantity or addons")
    if quantity is not None:
        positive_quantity(quantity, "quantity")
    request = {"sub": sub_id, "at": at, "plan": plan, "qty": quantity, "addons": addons, "w": when}
    with write_conn(target) as conn:

        def _do() -> dict[str, Any]:
            snap = catalog or load_snapshot(conn)
            st = catch_up(conn, sub_id, at, snap)
            if st.status not in ("trialing", "active", "past_due", "paused"):
                raise InvalidTransitionError(
                    f"cannot change subscription {sub_id}: it is {st.status}"
                )
            new_items = resolve_items(
                snap,
                st.items,
                st.currency,
                (st.interval, st.interval_count),
                plan,
                quantity,
                addons,
            )
            if new_items == st.items:
                raise ValidationError("the requested change leaves the subscription as it is")
            result: dict[str, Any] = {"proration_invoice": None, "credit_note": None}
            if when == "period_end":
                st.pending_change_json = json.dumps({"items": new_items})
                save_state(conn, st)
                record_events(
                    conn,
                    Event(sub_id, at, "change_scheduled", st.status, st.status,
                          {"to_items": new_items, "effective": st.current_period_end.isoformat()}),
                )  # fmt: skip
            else:
                inv, note = _prorate(conn, st, new_items, at, snap)
                result = {"proration_invoice": inv, "credit_note": note}
                old_items = st.items
                st = replace(st, items=new_items, pending_change_json=None)
                save_state(conn, st, items=True)
                record_events(
                    conn,
                    Event(sub_id, at, "plan_changed", st.status, st.status,
                          {"from_items": old_items, "to_items": new_items}),
                )  # fmt: skip
            return {"subscription": get_subscription(conn, sub_id)} | result

        return run_idempotent(conn, idempotency_key, "change_subscription", request, at, _do)


def credit_unused_time(
    conn: Connection, st: SubState, at: datetime, reason: str
) -> dict[str, Any] | None:
    if not (st.status in INVOICING and st.billed_period_start == st.current_period_start):
        return None
    if not st.current_period_start <= at < st.current_period_end:
        return None
    inv = recurring_invoice_row(conn, st)
    if inv is None or inv.status not in ("open", "paid"):
        return None
    f = proration_factor(st.current_period_start, st.current_period_end, at)
    lines = unused_time_lines(conn, inv.id, f)
    if sum(x.taxable_minor for x in lines) <= 0:
        return None
    return issue_credit_note(conn, inv.id, lines, reason=reason, at=at)
