"""Batched sign-ups and status changes for bulk callers (the simulator, imports): many customers,
subscriptions and payment-driven transitions per statement, in the caller's transaction.

Each function applies the same validation and domain rules as its per-row counterpart
(`customers.create_customer`, `subscriptions.create_subscription`,
`subscriptions.transition_subscription`) and reports a refused row in its place."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from billing_jobs.catalog.snapshot import CatalogSnapshot, load_snapshot
from billing_jobs.customers import customer_fields
from billing_jobs.errors import (
    BillingError,
    InvalidTransitionError,
    NotFoundError,
    ValidationError,
)
from billing_jobs.ledger.rawsql import (
    from_db,
    is_sqlite,
    ph,
    reserve_ids,
    sql_insert,
    sql_many,
    sql_rows,
    to_db,
)
from billing_jobs.periods import require_aware
from billing_jobs.subscriptions.billing_run import _SUB_STATE_COLS, bill_states
from billing_jobs.subscriptions.lifecycle import Event, SubState, check_transition
from billing_jobs.subscriptions.state import STATE_COLS, new_subscription_state, record_events

CHUNK = 500
_DT_COLS = frozenset(
    {"billing_anchor", "current_period_start", "current_period_end", "billed_period_start",
     "trial_end", "canceled_at"}
)  # fmt: skip


@dataclass(frozen=True)
class NewCustomer:
    """The arguments of `create_customer` for one customer."""

    name: str
    state_code: str
    currency: str
    now: datetime
    email: str | None = None
    gstin: str | None = None
    tax_status: str = "regular"
    locale: str = "en_IN"
    external_ref: str | None = None


@dataclass(frozen=True)
class NewSubscription:
    """The arguments of `create_subscription` (invoiced at start) for one subscription."""

    customer_id: int
    plan: str
    start: datetime
    quantity: int = 1
    addons: Mapping[str, int] = field(default_factory=dict)
    coupon: str | None = None
    trial_days: int | None = None


def _reserve_ids(conn: Connection, table: str, n: int) -> list[int]:
    """`rawsql.reserve_ids` on the DBAPI cursor for SQLite (the caller holds the write lock)."""
    if n <= 0 or not is_sqlite(conn):
        return reserve_ids(conn, table, n)
    (top,) = sql_rows(conn, f"SELECT coalesce(max(id), 0) FROM {table}")[0]
    return list(range(top + 1, top + n + 1))


def _in(conn: Connection, n: int) -> str:
    return ", ".join([ph(conn)] * n)


def _customer_row(c: NewCustomer) -> dict[str, Any]:
    """create_customer's validation (`customer_fields`); raises ValidationError."""
    return customer_fields(
        name=c.name, state_code=c.state_code, currency=c.currency, now=c.now, email=c.email,
        gstin=c.gstin, tax_status=c.tax_status, locale=c.locale, external_ref=c.external_ref,
    )  # fmt: skip


def create_customers(
    conn: Connection, customers: Sequence[NewCustomer]
) -> list[int | ValidationError]:
    """`create_customer` for many: the new id, or the ValidationError that refused the row
    (bad field, or an external_ref already used in the ledger or earlier in the batch)."""
    sq = is_sqlite(conn)
    refs = [c.external_ref for c in customers if c.external_ref is not None]
    taken: set[str] = set()
    for i in range(0, len(refs), CHUNK):
        part = refs[i : i + CHUNK]
        sql = f"SELECT external_ref FROM customers WHERE external_ref IN ({_in(conn, len(part))})"
        taken.update(r[0] for r in sql_rows(conn, sql, tuple(part)))
    checked: list[dict[str, Any] | ValidationError] = []
    for c in customers:
        try:
            row = _customer_row(c)
            if c.external_ref is not None:
                if c.external_ref in taken:
                    raise ValidationError(f"a customer with external_ref {c.external_ref!r} exists")
                taken.add(c.external_ref)
            checked.append(row)
        except ValidationError as e:
            checked.append(e)
    ids = iter(_reserve_ids(conn, "customers", sum(isinstance(x, dict) for x in checked)))
    out: list[int | ValidationError] = []
    tuples = []
    cols = ("id", "name", "email", "state_code", "gstin", "tax_status", "locale", "currency",
            "address_line", "city", "postal_code", "country", "external_ref", "created_at")  # fmt: skip
    for x in checked:
        if isinstance(x, ValidationError):
            out.append(x)
            continue
        cid = next(ids)
        tuples.append((cid, *(x[c] for c in cols[1:-1]), to_db(sq, x["created_at"])))
        out.append(cid)
    sql_insert(conn, "customers", cols, tuples)
    return out


def create_subscriptions(
    conn: Connection,
    requests: Sequence[NewSubscription],
    *,
    catalog: CatalogSnapshot | None = None,
) -> list[int | BillingError]:
    """`create_subscription` (invoice_now, no idempotency key) for many, in order: the new id or
    the error that refused the row. Active subscriptions are invoiced at their start, each
    start in its own `bill_states` call so invoice dates and numbering follow time."""
    if not requests:
        return []
    sq = is_sqlite(conn)
    catalog = catalog or load_snapshot(conn)
    cids = sorted({r.customer_id for r in requests})
    currency: dict[int, str] = {}
    for i in range(0, len(cids), CHUNK):
        part = cids[i : i + CHUNK]
        sql = f"SELECT id, currency FROM customers WHERE id IN ({_in(conn, len(part))})"
        currency.update(sql_rows(conn, sql, tuple(part)))  # type: ignore[arg-type]
    states: list[SubState | BillingError] = []
    for r in requests:
        try:
            require_aware(r.start, "start")
            if isinstance(r.quantity, bool) or not isinstance(r.quantity, int) or r.quantity <= 0:
                raise ValidationError(f"quantity must be a positive integer, got {r.quantity!r}")
            if r.customer_id not in currency:
                raise NotFoundError(f"customer {r.customer_id} does not exist")
            states.append(
                new_subscription_state(catalog, r.customer_id, currency[r.customer_id], r.plan,
                                       r.start, r.quantity, r.addons, r.coupon, r.trial_days)
            )  # fmt: skip
        except BillingError as e:
            states.append(e)
    good = [(st, r) for st, r in zip(states, requests, strict=True) if isinstance(st, SubState)]
    ids = _reserve_ids(conn, "subscriptions", len(good))
    cols = [c for c in STATE_COLS if c != "id"]
    sub_rows, item_rows, events = [], [], []
    for sub_id, (st, r) in zip(ids, good, strict=True):
        st.id = sub_id
        vals = [to_db(sq, getattr(st, c)) if c in _DT_COLS else getattr(st, c) for c in cols]
        sub_rows.append((sub_id, *vals, to_db(sq, st.next_action_at), to_db(sq, r.start)))
        item_rows.extend((sub_id, pid, q) for pid, q in st.items)
        events.append(Event(sub_id, r.start, "created", None, st.status, {"items": st.items}))
    sql_insert(conn, "subscriptions", ("id", *cols, "next_action_at", "created_at"), sub_rows)
    sql_insert(conn, "subscription_items", ("subscription_id", "plan_id", "quantity"), item_rows)
    record_events(conn, *events)
    group: list[SubState] = []
    at: datetime | None = None
    for st, r in good:
        if st.status != "active":
            continue
        if group and r.start != at:
            bill_states(conn, group, at, catalog)  # type: ignore[arg-type]
            group = []
        group.append(st)
        at = r.start
    if group:
        bill_states(conn, group, at, catalog)  # type: ignore[arg-type]
    return [st.id if isinstance(st, SubState) else st for st in states]


def transition_subscriptions(
    conn: Connection, changes: Sequence[tuple[int, str, datetime, str]]
) -> list[bool]:
    """`transition_subscription` for many (subscription id, to status, at, reason), applied in
    order: True when the status changed, False when the state machine refused it (paused or
    canceled meanwhile; pause/cancel have their own functions). A backdated change (before the
    subscription's latest event) or an unknown subscription raises, and nothing is written."""
    if not changes:
        return []
    sq, p = is_sqlite(conn), ph(conn)
    ids = sorted({int(c[0]) for c in changes})
    states: dict[int, SubState] = {}
    latest: dict[int, datetime] = {}
    cols = ", ".join(_SUB_STATE_COLS)
    lock = "" if sq else " FOR UPDATE"
    for i in range(0, len(ids), CHUNK):
        part = tuple(ids[i : i + CHUNK])
        marks = _in(conn, len(part))
        for r in sql_rows(
            conn, f"SELECT {cols} FROM subscriptions WHERE id IN ({marks}){lock}", part
        ):
            vals = [
                from_db(v) if c in _DT_COLS else v for c, v in zip(_SUB_STATE_COLS, r, strict=True)
            ]
            st = SubState(*vals)
            st.cancel_at_period_end = bool(st.cancel_at_period_end)
            states[st.id] = st
        for sid, at in sql_rows(
            conn,
            "SELECT subscription_id, max(at) FROM subscription_events "
            f"WHERE subscription_id IN ({marks}) GROUP BY subscription_id",
            part,
        ):
            latest[sid] = from_db(at)  # type: ignore[assignment]
    out, updates, events = [], [], []
    for sub_id, to, at, reason in changes:
        at = require_aware(at, "at")
        st = states.get(int(sub_id))
        if st is None:
            raise NotFoundError(f"subscription {sub_id} does not exist")
        last = latest.get(st.id)
        if last is not None and at < last:
            raise ValidationError(
                f"subscription {st.id} already has history up to {last.isoformat()}; an "
                f"operation at {at.isoformat()} would be backdated"
            )
        try:
            check_transition(st.id, st.status, to, f"move to {to}")
            if to in ("paused", "canceled"):
                raise InvalidTransitionError(
                    f"use pause_subscription/cancel_subscription to move to {to}"
                )
        except InvalidTransitionError:
            out.append(False)
            continue
        events.append(Event(st.id, at, "status_changed", st.status, to, {"reason": reason}))
        st.status = to
        latest[st.id] = at
        updates.append((to, to_db(sq, st.next_action_at), st.id))
        out.append(True)
    if updates:
        sql_many(
            conn,
            f"UPDATE subscriptions SET status = {p}, next_action_at = {p} WHERE id = {p}",
            updates,
        )
    record_events(conn, *events)
    return out


__all__ = [
    "NewCustomer",
    "NewSubscription",
    "create_customers",
    "create_subscriptions",
    "transition_subscriptions",
]
