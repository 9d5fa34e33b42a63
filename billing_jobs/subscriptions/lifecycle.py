"""Subscription state machine and the pure 'advance to as_of' step used by run_billing."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from billing_jobs.catalog.snapshot import CatalogSnapshot
from billing_jobs.errors import InvalidTransitionError
from billing_jobs.invoicing.builder import (
    CustomerTax,
    DraftInvoice,
    LineInput,
    build_invoice,
    coupon_applies,
    coupon_discount,
)
from billing_jobs.periods import IST, period_bounds


class Status(StrEnum):
    """Subscription statuses (Stripe's set)."""

    TRIALING = "trialing"
    ACTIVE = "active"
    PAST_DUE = "past_due"
    PAUSED = "paused"
    CANCELED = "canceled"
    UNPAID = "unpaid"
    INCOMPLETE = "incomplete"


ALLOWED: dict[Status, frozenset[Status]] = {
    Status.TRIALING: frozenset({Status.ACTIVE, Status.PAUSED, Status.CANCELED, Status.PAST_DUE}),
    Status.ACTIVE: frozenset({Status.PAST_DUE, Status.PAUSED, Status.CANCELED, Status.UNPAID}),
    Status.PAST_DUE: frozenset({Status.ACTIVE, Status.UNPAID, Status.PAUSED, Status.CANCELED}),
    Status.UNPAID: frozenset({Status.ACTIVE, Status.CANCELED}),
    Status.PAUSED: frozenset({Status.ACTIVE, Status.CANCELED}),
    Status.INCOMPLETE: frozenset({Status.ACTIVE, Status.CANCELED}),
    Status.CANCELED: frozenset(),
}
_TRIALING, _ACTIVE, _CANCELED = "trialing", "active", "canceled"
# Statuses in which periods roll over and invoices are generated.
BILLABLE = (Status.TRIALING.value, Status.ACTIVE.value, Status.PAST_DUE.value)
INVOICING = (Status.ACTIVE.value, Status.PAST_DUE.value)


def check_transition(sub_id: int, current: str, target: str, action: str) -> None:
    """Raise InvalidTransitionError unless current -> target is allowed."""
    cur, tgt = Status(current), Status(target)
    if tgt not in ALLOWED[cur]:
        allowed = ", ".join(sorted(s.value for s in ALLOWED[cur])) or "none (terminal)"
        raise InvalidTransitionError(
            f"cannot {action} subscription {sub_id}: it is {cur.value}, and {cur.value} -> "
            f"{tgt.value} is not allowed (allowed from {cur.value}: {allowed})"
        )


@dataclass
class SubState:
    """The billing-relevant columns of one subscription plus its items."""

    id: int
    customer_id: int
    status: str
    currency: str
    interval: str
    interval_count: int
    billing_anchor: datetime
    period_index: int
    current_period_start: datetime
    current_period_end: datetime
    billed_period_start: datetime | None
    trial_end: datetime | None
    cancel_at_period_end: bool
    canceled_at: datetime | None
    coupon_id: int | None
    coupon_periods_used: int
    pending_change_json: str | None
    items: list[tuple[int, int]] = field(default_factory=list)  # (plan_id, quantity)

    @property
    def next_action_at(self) -> datetime:
        if self.status in INVOICING and self.billed_period_start != self.current_period_start:
            return self.current_period_start
        return self.current_period_end


@dataclass
class Event:
    subscription_id: int
    at: datetime
    kind: str
    from_status: str | None
    to_status: str | None
    detail: dict[str, Any] | None = None


@dataclass
class AdvanceResult:
    state: SubState
    invoices: list[DraftInvoice]
    events: list[Event]
    items_changed: bool
    credit_used_minor: int


@lru_cache(maxsize=4096)
def _fmt(d: datetime) -> str:
    return d.astimezone(IST).strftime("%d %b %Y")


def recurring_lines(
    state: SubState, catalog: CatalogSnapshot, start: datetime, end: datetime
) -> list[LineInput]:
    """One line per item for the period [start, end)."""
    lines = []
    for plan_id, qty in state.items:
        plan = catalog.plan(plan_id)
        lines.append(
            LineInput(
                "recurring",
                f"{plan.name} × {qty} ({_fmt(start)} – {_fmt(end)})",
                plan_id,
                plan.sac,
                qty,
                plan.amount(state.currency, qty),
                start,
                end,
            )
        )
    return lines


def recurring_invoice(
    state: SubState,
    catalog: CatalogSnapshot,
    customer: CustomerTax,
    credit_available: int,
) -> DraftInvoice:
    """The invoice for the current period (billed in advance, dated at period start)."""
    start, end = state.current_period_start, state.current_period_end
    lines = recurring_lines(state, catalog, start, end)
    coupon = catalog.coupons.get(state.coupon_id) if state.coupon_id else None
    discount = 0
    if coupon_applies(coupon, state.coupon_periods_used):
        discount = coupon_discount(coupon, sum(x.amount_minor for x in lines), state.currency)
    return build_invoice(
        kind="recurring",
        customer_id=state.customer_id,
        subscription_id=state.id,
        currency=state.currency,
        issued_at=start,
        lines=lines,
        customer=customer,
        supplier_gstin=catalog.supplier_gstin or "",
        discount_minor=discount,
        credit_available_minor=credit_available,
        period_start=start,
        period_end=end,
    )


def _period_invoice(
    st: SubState,
    catalog: CatalogSnapshot,
    customer: CustomerTax,
    credit_left: int,
    memo: dict[tuple, DraftInvoice] | None,
) -> DraftInvoice:
    """The recurring invoice of the current period."""
    coupon = catalog.coupons.get(st.coupon_id) if st.coupon_id else None
    if memo is None or credit_left > 0 or coupon_applies(coupon, st.coupon_periods_used):
        return recurring_invoice(st, catalog, customer, credit_left)
    # Set-based pricing: subscriptions with the same items, period and tax facts get the same
    # figures, so compute them once per batch.
    key = (tuple(st.items), st.currency, st.current_period_start, st.current_period_end,
           customer)  # fmt: skip
    tmpl = memo.get(key)
    if tmpl is None:
        tmpl = memo[key] = recurring_invoice(st, catalog, customer, 0)
    inv = tmpl.clone()
    inv.customer_id, inv.subscription_id = st.customer_id, st.id
    return inv


def advance(
    state: SubState,
    as_of: datetime,
    catalog: CatalogSnapshot,
    customer: CustomerTax,
    credit_available: int,
    memo: dict[tuple, DraftInvoice] | None = None,
) -> AdvanceResult:
    """Roll the subscription forward to `as_of`: end trials, bill each due period once, apply
    scheduled changes and cancellations at period end. Pure: returns what to write."""
    st = object.__new__(SubState)  # shallow copy without copy.copy's reduce protocol
    st.__dict__ = dict(state.__dict__)
    st.items = list(state.items)
    invoices: list[DraftInvoice] = []
    events: list[Event] = []
    items_changed = False
    credit_used = 0
    for _ in range(10_000):  # a guard against a bug looping forever; ~800 years of months
        if st.status == _TRIALING:
            if st.trial_end is None or st.trial_end > as_of:
                break
            events.append(Event(st.id, st.trial_end, "trial_ended", "trialing", "active"))
            st.status = _ACTIVE
            st.billing_anchor, st.period_index = st.trial_end, 0
            st.current_period_start, st.current_period_end = period_bounds(
                st.billing_anchor, st.interval, st.interval_count, 0
            )
            continue
        if st.status not in INVOICING:
            break
        if st.billed_period_start != st.current_period_start and st.current_period_start <= as_of:
            inv = _period_invoice(st, catalog, customer, credit_available - credit_used, memo)
            credit_used += inv.credit_applied_minor
            if inv.discount_minor:
                st.coupon_periods_used += 1
            invoices.append(inv)
            st.billed_period_start = st.current_period_start
            continue
        if st.current_period_end <= as_of:
            end = st.current_period_end
            if st.cancel_at_period_end:
                events.append(Event(st.id, end, "canceled", st.status, "canceled"))
                st.status, st.canceled_at = _CANCELED, end
                break
            if st.pending_change_json:
                change = json.loads(st.pending_change_json)
                new_items = [(int(p), int(q)) for p, q in change["items"]]
                events.append(
                    Event(
                        st.id,
                        end,
                        "plan_changed",
                        st.status,
                        st.status,
                        {"from_items": st.items, "to_items": new_items, "scheduled": True},
                    )
                )
                st.items, st.pending_change_json, items_changed = new_items, None, True
            st.period_index += 1
            st.current_period_start, st.current_period_end = period_bounds(
                st.billing_anchor, st.interval, st.interval_count, st.period_index
            )
            events.append(Event(st.id, end, "renewed", st.status, st.status))
            continue
        break
    else:  # pragma: no cover - only reachable through a bug
        raise RuntimeError(f"subscription {st.id} did not settle while advancing to {as_of}")
    return AdvanceResult(st, invoices, events, items_changed, credit_used)
