"""run_billing: find what is due at as_of and invoice it in batched, atomic transactions."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, func, insert, select, update

from billing_jobs.invoice_builder import CustomerTax
from billing_jobs.invoice_store import insert_invoices
from billing_jobs.ledger import schema as s
from billing_jobs.ledger.session import Target, write_conn
from billing_jobs.lifecycle import BILLABLE, Event, SubState, advance
from billing_jobs.periods import require_aware
from billing_jobs.snapshot import CatalogSnapshot, load_snapshot

_SUB_STATE_COLS = (
    "id",
    "customer_id",
    "status",
    "currency",
    "interval",
    "interval_count",
    "billing_anchor",
    "period_index",
    "current_period_start",
    "current_period_end",
    "billed_period_start",
    "trial_end",
    "cancel_at_period_end",
    "canceled_at",
    "coupon_id",
    "coupon_periods_used",
    "pending_change_json",
)
_UPDATE_COLS = tuple(c for c in _SUB_STATE_COLS if c not in ("id", "customer_id", "currency"))


@dataclass
class BillingRunResult:
    """Counts of one run (JSON-serializable via to_dict)."""

    as_of: str
    subscriptions_processed: int = 0
    invoices_created: int = 0
    events_recorded: int = 0
    batches: int = 0
    invoice_ids: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_states(conn: Connection, rows: Sequence[Any]) -> list[SubState]:
    """SubState objects (with items) for subscription rows."""
    ids = [r.id for r in rows]
    items: dict[int, list[tuple[int, int]]] = {i: [] for i in ids}
    q = (
        select(
            s.subscription_items.c.subscription_id,
            s.subscription_items.c.plan_id,
            s.subscription_items.c.quantity,
        )
        .where(s.subscription_items.c.subscription_id.in_(ids))
        .order_by(s.subscription_items.c.id)
    )
    for sid, pid, qty in conn.execute(q):
        items[sid].append((pid, qty))
    return [
        SubState(**{c: getattr(r, c) for c in _SUB_STATE_COLS}, items=items[r.id]) for r in rows
    ]


def load_customer_tax(conn: Connection, customer_ids: Iterable[int]) -> dict[int, CustomerTax]:
    ids = sorted(set(customer_ids))
    c = s.customers
    q = select(c.c.id, c.c.state_code, c.c.gstin, c.c.tax_status).where(c.c.id.in_(ids))
    return {r.id: CustomerTax(r.state_code, r.gstin, r.tax_status) for r in conn.execute(q)}


def load_balances(conn: Connection, customer_ids: Iterable[int]) -> dict[tuple[int, str], int]:
    """Credit available per (customer, currency)."""
    t = s.customer_balance_transactions
    ids = sorted(set(customer_ids))
    q = (
        select(t.c.customer_id, t.c.currency, func.sum(t.c.amount_minor))
        .where(t.c.customer_id.in_(ids))
        .group_by(t.c.customer_id, t.c.currency)
    )
    return {(cid, cur): int(total) for cid, cur, total in conn.execute(q)}


def event_rows(events: Iterable[Event]) -> list[dict[str, Any]]:
    return [
        {
            "subscription_id": e.subscription_id,
            "at": e.at,
            "kind": e.kind,
            "from_status": e.from_status,
            "to_status": e.to_status,
            "detail_json": json.dumps(e.detail) if e.detail is not None else None,
        }
        for e in events
    ]


def bill_states(
    conn: Connection,
    states: Sequence[SubState],
    as_of: datetime,
    catalog: CatalogSnapshot,
    *,
    finalize: bool = True,
) -> tuple[list[int], int]:
    """Advance subscriptions to as_of and write invoices, events and new states in `conn`.

    Returns the new invoice ids and the number of events."""
    if not states:
        return [], 0
    customers = load_customer_tax(conn, (st.customer_id for st in states))
    balances = load_balances(conn, (st.customer_id for st in states))
    drafts, events, updates, changed = [], [], [], []
    for st in states:
        key = (st.customer_id, st.currency)
        res = advance(st, as_of, catalog, customers[st.customer_id], balances.get(key, 0))
        balances[key] = balances.get(key, 0) - res.credit_used_minor
        drafts.extend(res.invoices)
        events.extend(res.events)
        new = res.state
        updates.append(
            {f"b_{c}": getattr(new, c) for c in _UPDATE_COLS}
            | {"b_id": new.id, "b_next_action_at": new.next_action_at}
        )
        if res.items_changed:
            changed.append(new)
    ids = insert_invoices(
        conn, drafts, finalize=finalize, created_at=as_of, prefix=catalog.invoice_prefix
    )
    t = s.subscriptions
    stmt = (
        update(t)
        .where(t.c.id == bindparam("b_id"))
        .values({c: bindparam(f"b_{c}") for c in (*_UPDATE_COLS, "next_action_at")})
    )
    conn.execute(stmt, updates)
    if changed:
        items = s.subscription_items
        conn.execute(delete(items).where(items.c.subscription_id.in_([st.id for st in changed])))
        conn.execute(
            insert(items),
            [
                {"subscription_id": st.id, "plan_id": p, "quantity": q}
                for st in changed
                for p, q in st.items
            ],
        )
    if events:
        conn.execute(insert(s.subscription_events), event_rows(events))
    return ids, len(events)


def _due_query(as_of: datetime, batch_size: int, ids: Sequence[int] | None, dialect: str):
    t = s.subscriptions
    q = (
        select(*(t.c[c] for c in _SUB_STATE_COLS))
        .where(t.c.status.in_(BILLABLE), t.c.next_action_at <= as_of)
        .order_by(t.c.id)
        .limit(batch_size)
    )
    if ids is not None:
        q = q.where(t.c.id.in_(list(ids)))
    if dialect == "postgresql":
        # Concurrent runs split the work instead of queueing behind each other's rows.
        q = q.with_for_update(skip_locked=True, of=t)
    return q


def _run_batch(
    conn: Connection,
    as_of: datetime,
    batch_size: int,
    ids: Sequence[int] | None,
    catalog: CatalogSnapshot,
    finalize: bool,
    result: BillingRunResult,
) -> bool:
    rows = conn.execute(_due_query(as_of, batch_size, ids, conn.dialect.name)).all()
    if not rows:
        return False
    states = load_states(conn, rows)
    if any(p not in catalog.plans for st in states for p, _ in st.items):
        catalog.__dict__.update(load_snapshot(conn).__dict__)  # catalog grew during the run
    new_ids, n_events = bill_states(conn, states, as_of, catalog, finalize=finalize)
    result.subscriptions_processed += len(states)
    result.invoices_created += len(new_ids)
    result.invoice_ids.extend(new_ids)
    result.events_recorded += n_events
    result.batches += 1
    return True


def run_billing(
    target: Target,
    as_of: datetime,
    *,
    batch_size: int = 1000,
    subscription_ids: Sequence[int] | None = None,
    finalize: bool = True,
) -> BillingRunResult:
    """Bill everything due at `as_of`: end trials, renew periods, apply scheduled changes and
    cancellations, and create + finalize one invoice per subscription period.

    With an Engine each batch is its own transaction (crash-safe: a batch is all or nothing
    and a rerun continues where it stopped). With a Connection or Session everything happens
    in the caller's transaction. Running twice for the same as_of creates nothing new."""
    as_of = require_aware(as_of, "as_of")
    result = BillingRunResult(as_of=as_of.isoformat())
    if isinstance(target, Engine):
        with target.connect() as conn:
            catalog = load_snapshot(conn)
            conn.rollback()
        while True:
            with target.begin() as conn:
                if not _run_batch(
                    conn, as_of, batch_size, subscription_ids, catalog, finalize, result
                ):
                    break
        return result
    with write_conn(target) as conn:
        catalog = load_snapshot(conn)
        while _run_batch(conn, as_of, batch_size, subscription_ids, catalog, finalize, result):
            pass
    return result
