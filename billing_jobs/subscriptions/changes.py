"""Plan and quantity changes: prorated now (credit the unused time at the price paid, charge the
new items at the period's price) or scheduled at period end; and the unused-time credit that
cancel and pause also issue. What is in force, at what price, lives in `charges`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from billing_jobs.catalog.snapshot import CatalogSnapshot, load_snapshot
from billing_jobs.customers import credit_balance, customer_row
from billing_jobs.errors import InvalidTransitionError, ValidationError
from billing_jobs.invoicing.builder import CustomerTax, LineInput, build_invoice
from billing_jobs.invoicing.credit_notes import CreditLine, issue_credit_note
from billing_jobs.invoicing.invoices import get_invoice
from billing_jobs.invoicing.store import insert_invoices_and_lines
from billing_jobs.ledger.idempotency import run_idempotent
from billing_jobs.ledger.session import Target, write_conn
from billing_jobs.periods import IST, ist_date, require_aware
from billing_jobs.subscriptions.charges import (
    Charge,
    PeriodPrice,
    charges_in_force,
    close_charges,
    creditable_minor,
    open_charges,
    period_coupon,
    period_invoices,
    period_prices,
    recurring_invoice_row,
)
from billing_jobs.subscriptions.lifecycle import INVOICING, Event, SubState
from billing_jobs.subscriptions.proration import proration_factor
from billing_jobs.subscriptions.state import (
    catch_up,
    get_subscription,
    positive_quantity,
    record_events,
    resolve_items,
    save_state,
)
from billing_jobs.tax.gst import gst_rate_bp


def _when(at: datetime) -> str:
    return at.astimezone(IST).strftime("%d %b %Y %H:%M")


def _period_is_charged(st: SubState, at: datetime) -> bool:
    return (
        st.status in INVOICING
        and st.billed_period_start == st.current_period_start
        and st.current_period_start <= at < st.current_period_end
    )


def _proration_lines(
    st: SubState,
    new_items: list[tuple[int, int]],
    at: datetime,
    catalog: CatalogSnapshot,
    in_force: dict[int, Charge],
    prices: dict[int, PeriodPrice],
) -> tuple[list[LineInput], list[Charge], list[tuple[int, int, PeriodPrice, int]]]:
    """Credit lines for the changed items' open charges (-their price paid x f) and debit
    lines for their replacements (+the period price x f); the charges to close and open."""
    f = proration_factor(st.current_period_start, st.current_period_end, at)
    old, new = dict(st.items), dict(new_items)
    when, on, end = _when(at), ist_date(at), st.current_period_end
    lines: list[LineInput] = []
    closed: list[Charge] = []
    opened: list[tuple[int, int, PeriodPrice, int]] = []
    for pid, oq in st.items:
        charge = in_force.get(pid)
        if new.get(pid, 0) == oq or charge is None:
            continue
        plan, part = catalog.plan(pid), charge.price.unused(f)
        lines.append(
            LineInput(
                "proration", f"Unused time on {plan.name} × {charge.quantity} after {when}",
                pid, plan.sac, charge.quantity, -part.amount_minor, at, end,
                discount_minor=-part.discount_minor, tax_rate_bp=charge.tax_rate_bp,
            )
        )  # fmt: skip
        closed.append(charge)
    for pid, nq in new_items:
        if old.get(pid, 0) == nq:
            continue
        plan, price = catalog.plan(pid), prices[pid]
        part, rate = price.unused(f), gst_rate_bp(plan.sac, on)
        lines.append(
            LineInput(
                "proration", f"Remaining time on {plan.name} × {nq} after {when}", pid,
                plan.sac, nq, part.amount_minor, at, end, discount_minor=part.discount_minor,
                tax_rate_bp=rate,
            )
        )  # fmt: skip
        opened.append((pid, nq, price, rate))
    return lines, closed, opened


def _prorate(
    conn: Connection,
    st: SubState,
    new_items: list[tuple[int, int]],
    at: datetime,
    catalog: CatalogSnapshot,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Proration at `at` (Stripe, per second): for each changed item, a credit of its open
    charge's price paid x f and a debit of the new item's period price x f (the price the
    period's invoice would charge it, coupon included). A positive net is invoiced now; a
    negative net becomes a credit note (GST reversed) whose value goes to customer credit."""
    if not _period_is_charged(st, at):
        return None, None
    recurring = recurring_invoice_row(conn, st)
    if recurring is None or recurring.status in ("void", "draft"):
        return None, None  # nothing was charged for this period, so nothing to prorate
    prices = period_prices(catalog, st.currency, new_items, period_coupon(catalog, st, recurring))
    lines, closed, opened = _proration_lines(
        st, new_items, at, catalog, charges_in_force(conn, st), prices
    )
    net = sum(x.amount_minor - x.discount_minor for x in lines)
    old_ids = [c.id for c in closed]
    if net > 0:
        cust = customer_row(conn, st.customer_id)
        draft = build_invoice(
            kind="proration",
            customer_id=st.customer_id,
            subscription_id=st.id,
            currency=st.currency,
            issued_at=at,
            lines=lines,
            customer=CustomerTax(cust.state_code, cust.gstin, cust.tax_status),
            supplier_gstin=catalog.supplier_gstin or "",
            credit_available_minor=credit_balance(conn, st.customer_id, st.currency),
            period_start=at,
            period_end=st.current_period_end,
        )
        (inv_id,), (line_ids,) = insert_invoices_and_lines(
            conn, [draft], finalize=True, created_at=at, prefix=catalog.invoice_prefix
        )
        close_charges(conn, old_ids, at, credit_invoice_id=inv_id)
        first = len(closed)  # debit lines follow the credit lines
        open_charges(
            conn, st, at,
            [(p, q, pr, r, inv_id, line_ids[first + i]) for i, (p, q, pr, r) in enumerate(opened)],
        )  # fmt: skip
        return get_invoice(conn, inv_id), None
    note = None
    booked = period_invoices(conn, st, recurring.id)
    if net < 0 and recurring.status in ("open", "paid") and creditable_minor(conn, booked) > 0:
        source = [c.invoice_line_id for c in closed] + [None] * len(opened)
        credit_lines = [
            CreditLine(x.description, x.sac, x.discount_minor - x.amount_minor,
                       x.tax_rate_bp or 0, line_id, -x.discount_minor)
            for x, line_id in zip(lines, source, strict=True)
        ]  # fmt: skip
        note = issue_credit_note(
            conn, recurring.id, credit_lines, reason="downgrade", at=at, also_against=booked
        )
    close_charges(conn, old_ids, at, credit_note_id=note["id"] if note else None)
    open_charges(conn, st, at, [(p, q, pr, r, recurring.id, None) for p, q, pr, r in opened])
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
    conn: Connection, st: SubState, at: datetime, reason: str, catalog: CatalogSnapshot
) -> dict[str, Any] | None:
    """Credit note for the unused time of every item in force at `at`, at the price paid
    (cancel and pause); their charges are closed, so that time is never credited again."""
    if not _period_is_charged(st, at):
        return None
    recurring = recurring_invoice_row(conn, st)
    if recurring is None or recurring.status not in ("open", "paid"):
        return None
    f = proration_factor(st.current_period_start, st.current_period_end, at)
    charges = list(charges_in_force(conn, st).values())
    when, lines = _when(at), []
    for c in charges:
        part = c.price.unused(f)
        if part.amount_minor or part.taxable_minor:
            plan = catalog.plan(c.plan_id)
            lines.append(
                CreditLine(
                    f"Unused time on {plan.name} × {c.quantity} after {when}", plan.sac,
                    part.taxable_minor, c.tax_rate_bp, c.invoice_line_id, part.discount_minor,
                )
            )  # fmt: skip
    booked = period_invoices(conn, st, recurring.id)
    note = None
    if sum(x.taxable_minor for x in lines) > 0 and creditable_minor(conn, booked) > 0:
        note = issue_credit_note(
            conn, recurring.id, lines, reason=reason, at=at, also_against=booked
        )
    close_charges(conn, [c.id for c in charges], at, credit_note_id=note["id"] if note else None)
    return note
