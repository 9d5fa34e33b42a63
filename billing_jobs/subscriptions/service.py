"""Subscription service: create, pause, resume, cancel and move between statuses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import insert, update

from billing_jobs.catalog.snapshot import CatalogSnapshot, load_snapshot
from billing_jobs.customers import customer_row
from billing_jobs.errors import InvalidTransitionError, ValidationError
from billing_jobs.inputs import MAX_TRIAL_DAYS
from billing_jobs.ledger import schema as s
from billing_jobs.ledger.idempotency import run_idempotent
from billing_jobs.ledger.session import Target, write_conn
from billing_jobs.periods import period_bounds, require_aware
from billing_jobs.subscriptions.billing_run import bill_states
from billing_jobs.subscriptions.changes import credit_unused_time
from billing_jobs.subscriptions.lifecycle import INVOICING, Event, check_transition
from billing_jobs.subscriptions.state import (
    STATE_COLS,
    catch_up,
    get_subscription,
    load_for_change,
    new_subscription_state,
    positive_quantity,
    record_events,
    save_state,
)


def create_subscription(
    target: Target,
    *,
    customer_id: int,
    plan: str,
    start: datetime,
    quantity: int = 1,
    addons: Mapping[str, int] | None = None,
    coupon: str | None = None,
    trial_days: int | None = None,
    invoice_now: bool = True,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """Create a subscription (trialing if the plan or `trial_days` gives a trial, else active
    and invoiced at `start` when invoice_now). Validation happens before any write."""
    start = require_aware(start, "start")
    positive_quantity(quantity, "quantity")
    if trial_days is not None and (
        isinstance(trial_days, bool)
        or not isinstance(trial_days, int)
        or not 0 <= trial_days <= MAX_TRIAL_DAYS
    ):
        raise ValidationError(
            f"trial_days must be an integer in 0..{MAX_TRIAL_DAYS}, got {trial_days!r}"
        )
    request = {
        "customer_id": customer_id,
        "plan": plan,
        "start": start,
        "quantity": quantity,
        "addons": dict(addons or {}),
        "coupon": coupon,
        "trial_days": trial_days,
    }
    with write_conn(target) as conn:

        def _do() -> dict[str, Any]:
            catalog = load_snapshot(conn)
            cust = customer_row(conn, customer_id)
            st = new_subscription_state(
                catalog, customer_id, cust.currency, plan, start, quantity, addons, coupon,
                trial_days,
            )  # fmt: skip
            items = st.items
            row = {c: getattr(st, c) for c in STATE_COLS if c != "id"}
            row |= {"next_action_at": st.next_action_at, "created_at": start}
            sub_id = conn.execute(
                insert(s.subscriptions).returning(s.subscriptions.c.id), row
            ).scalar_one()
            st.id = sub_id
            conn.execute(
                insert(s.subscription_items),
                [{"subscription_id": sub_id, "plan_id": p, "quantity": q} for p, q in items],
            )
            record_events(conn, Event(sub_id, start, "created", None, st.status, {"items": items}))
            if invoice_now and st.status == "active":
                bill_states(conn, [st], start, catalog)
            return get_subscription(conn, sub_id)

        return run_idempotent(conn, idempotency_key, "create_subscription", request, start, _do)


def cancel_subscription(
    target: Target,
    sub_id: int,
    *,
    at: datetime,
    at_period_end: bool = False,
    credit_unused: bool = True,
    catalog: CatalogSnapshot | None = None,
) -> dict[str, Any]:
    """Cancel now (crediting unused time by credit note) or at the end of the period."""
    at = require_aware(at, "at")
    with write_conn(target) as conn:
        catalog = catalog or load_snapshot(conn)
        st = catch_up(conn, sub_id, at, catalog)
        check_transition(sub_id, st.status, "canceled", "cancel")
        note = None
        if at_period_end:
            if st.status not in ("trialing", *INVOICING):
                raise InvalidTransitionError(
                    f"cannot cancel subscription {sub_id} at period end: it is {st.status}"
                )
            st.cancel_at_period_end = True
            save_state(conn, st)
            record_events(conn, Event(sub_id, at, "cancel_scheduled", st.status, st.status))
        else:
            if credit_unused:
                note = credit_unused_time(conn, st, at, "cancellation", catalog)
            prior = st.status
            st.status, st.canceled_at = "canceled", at
            save_state(conn, st)
            record_events(conn, Event(sub_id, at, "canceled", prior, "canceled"))
        return {"subscription": get_subscription(conn, sub_id), "credit_note": note}


def pause_subscription(
    target: Target, sub_id: int, *, at: datetime, catalog: CatalogSnapshot | None = None
) -> dict[str, Any]:
    """Pause now: no invoices until resumed; unused paid time is credited."""
    at = require_aware(at, "at")
    with write_conn(target) as conn:
        catalog = catalog or load_snapshot(conn)
        st = catch_up(conn, sub_id, at, catalog)
        check_transition(sub_id, st.status, "paused", "pause")
        note = credit_unused_time(conn, st, at, "pause", catalog)
        prior = st.status
        st.status = "paused"
        save_state(conn, st)
        conn.execute(
            update(s.subscriptions).where(s.subscriptions.c.id == sub_id).values(paused_at=at)
        )
        record_events(conn, Event(sub_id, at, "paused", prior, "paused"))
        return {"subscription": get_subscription(conn, sub_id), "credit_note": note}


def resume_subscription(
    target: Target,
    sub_id: int,
    *,
    at: datetime,
    invoice_now: bool = True,
    catalog: CatalogSnapshot | None = None,
) -> dict[str, Any]:
    """Resume a paused subscription: a new billing cycle starts at `at`."""
    at = require_aware(at, "at")
    with write_conn(target) as conn:
        catalog = catalog or load_snapshot(conn)
        st = load_for_change(conn, sub_id, at)
        check_transition(sub_id, st.status, "active", "resume")
        if st.status != "paused":
            raise InvalidTransitionError(f"subscription {sub_id} is {st.status}, not paused")
        ps, pe = period_bounds(at, st.interval, st.interval_count, 0)
        st = replace(
            st,
            status="active",
            billing_anchor=at,
            period_index=0,
            current_period_start=ps,
            current_period_end=pe,
            billed_period_start=None,
            trial_end=None,
        )
        save_state(conn, st)
        conn.execute(
            update(s.subscriptions).where(s.subscriptions.c.id == sub_id).values(paused_at=None)
        )
        record_events(conn, Event(sub_id, at, "resumed", "paused", "active"))
        if invoice_now:
            bill_states(conn, [st], at, catalog)
        return {"subscription": get_subscription(conn, sub_id)}


def transition_subscription(
    target: Target, sub_id: int, to_status: str, *, at: datetime, reason: str
) -> dict[str, Any]:
    """Status change driven by payments or dunning (past_due, unpaid, active again)."""
    at = require_aware(at, "at")
    with write_conn(target) as conn:
        st = load_for_change(conn, sub_id, at)
        check_transition(sub_id, st.status, to_status, f"move to {to_status}")
        if to_status in ("paused", "canceled"):
            raise InvalidTransitionError(
                f"use pause_subscription/cancel_subscription to move to {to_status}"
            )
        prior = st.status
        st.status = to_status
        save_state(conn, st)
        record_events(
            conn, Event(sub_id, at, "status_changed", prior, to_status, {"reason": reason})
        )
        return get_subscription(conn, sub_id)
