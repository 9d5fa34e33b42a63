"""Upcoming-invoice preview (Stripe style), optionally for a hypothetical change: the change is
applied inside a transaction that is always rolled back, so nothing is written."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine

from billing_jobs.catalog.snapshot import load_snapshot
from billing_jobs.customers import credit_balance, customer_row
from billing_jobs.invoicing.builder import CustomerTax
from billing_jobs.ledger.session import Target
from billing_jobs.periods import period_bounds, require_aware
from billing_jobs.subscriptions.changes import change_subscription
from billing_jobs.subscriptions.lifecycle import recurring_invoice
from billing_jobs.subscriptions.state import catch_up

_DOC_FIELDS = ("id", "number", "financial_year", "finalized_at", "created_at")


@contextmanager
def _rolled_back(target: Target) -> Iterator[Connection]:
    if isinstance(target, Engine):
        with target.connect() as conn:
            trans = conn.begin()
            try:
                yield conn
            finally:
                trans.rollback()
        return
    conn = target if isinstance(target, Connection) else target.connection()
    nested = conn.begin_nested()
    try:
        yield conn
    finally:
        nested.rollback()


def _scrub(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    if doc is None:
        return None
    return {k: (None if k in _DOC_FIELDS else v) for k, v in doc.items()}


def preview_invoice(
    target: Target,
    sub_id: int,
    *,
    at: datetime,
    change: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What would be billed: prorations for `change` at `at` (if given) and the next recurring
    invoice (the current period if not yet invoiced, else the next one)."""
    at = require_aware(at, "at")
    with _rolled_back(target) as conn:
        proration = credit_note = None
        if change:
            allowed = {"plan", "quantity", "addons", "when"}
            unknown = set(change) - allowed
            if unknown:
                from billing_jobs.errors import ValidationError

                raise ValidationError(f"unknown change fields {sorted(unknown)}; use {allowed}")
            res = change_subscription(conn, sub_id, at=at, **dict(change))
            proration, credit_note = res["proration_invoice"], res["credit_note"]
        catalog = load_snapshot(conn)
        st = catch_up(conn, sub_id, at, catalog)
        upcoming = None
        if st.status in ("trialing", "active", "past_due"):
            nxt = st
            if st.status == "trialing":
                ps, pe = period_bounds(st.trial_end, st.interval, st.interval_count, 0)
                nxt = replace(st, status="active", current_period_start=ps, current_period_end=pe)
            elif st.billed_period_start == st.current_period_start:
                ps, pe = period_bounds(
                    st.billing_anchor, st.interval, st.interval_count, st.period_index + 1
                )
                nxt = replace(st, current_period_start=ps, current_period_end=pe)
            if st.pending_change_json:
                nxt = replace(
                    nxt,
                    items=[
                        (int(p), int(q)) for p, q in json.loads(st.pending_change_json)["items"]
                    ],
                )
            if not (st.cancel_at_period_end and nxt is not st):
                cust = customer_row(conn, st.customer_id)
                upcoming = recurring_invoice(
                    nxt,
                    catalog,
                    CustomerTax(cust.state_code, cust.gstin, cust.tax_status),
                    credit_balance(conn, st.customer_id, st.currency),
                ).to_dict()
        return {
            "subscription_id": sub_id,
            "at": at.isoformat(),
            "proration_invoice": _scrub(proration),
            "credit_note": _scrub(credit_note),
            "upcoming_invoice": upcoming,
            "amount_due_now_minor": proration["amount_due_minor"] if proration else 0,
        }
