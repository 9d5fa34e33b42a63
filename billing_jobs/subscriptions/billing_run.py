"""run_billing: find what is due at as_of and invoice it in batched, atomic transactions."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select

from billing_jobs.catalog.snapshot import CatalogSnapshot, load_snapshot
from billing_jobs.invoicing.builder import CustomerTax
from billing_jobs.invoicing.store import insert_invoices_and_lines
from billing_jobs.ledger import schema as s
from billing_jobs.ledger.rawsql import from_db, is_sqlite, ph, sql_many, to_db
from billing_jobs.ledger.session import Target, write_conn
from billing_jobs.periods import require_aware
from billing_jobs.subscriptions.charges import record_invoiced
from billing_jobs.subscriptions.lifecycle import Event, SubState, advance

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


def _by_ids(conn: Connection, sql: str, ids: list[int]) -> list[Any]:
    """Rows of `sql` (with one `{ids}` placeholder list) over `ids`, on the DBAPI cursor: these
    run for every invoice a subscription change or sign-up writes, where SQLAlchemy's
    per-statement overhead cost more than the query."""
    out: list[Any] = []
    p = ph(conn)
    for i in range(0, len(ids), 500):
        part = ids[i : i + 500]
        cur = conn.connection.cursor()
        try:
            cur.execute(sql.format(ids=", ".join([p] * len(part))), tuple(part))
            out.extend(cur.fetchall())
        finally:
            cur.close()
    return out


def load_customer_tax(conn: Connection, customer_ids: Iterable[int]) -> dict[int, CustomerTax]:
    ids = sorted(set(customer_ids))
    sql = "SELECT id, state_code, gstin, tax_status FROM customers WHERE id IN ({ids})"
    return {cid: CustomerTax(st, gstin, tax) for cid, st, gstin, tax in _by_ids(conn, sql, ids)}


def load_balances(conn: Connection, customer_ids: Iterable[int]) -> dict[tuple[int, str], int]:
    """Credit available per (customer, currency)."""
    ids = sorted(set(customer_ids))
    sql = (
        "SELECT customer_id, currency, sum(amount_minor) FROM customer_balance_transactions "
        "WHERE customer_id IN ({ids}) GROUP BY customer_id, currency"
    )
    return {(cid, cur): int(total) for cid, cur, total in _by_ids(conn, sql, ids)}


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


def _state_update(sq: bool, old: SubState, new: SubState) -> tuple[bool, tuple[Any, ...]]:
    """The UPDATE parameters of a subscription's new state: (True, the narrow row) in the common
    case (a period invoiced, nothing else changed), else (False, every column of _UPDATE_COLS
    plus next_action_at, then the id)."""
    if (
        new.status == old.status
        and new.period_index == old.period_index
        and new.billing_anchor == old.billing_anchor
        and new.pending_change_json == old.pending_change_json
    ):
        return True, (
            to_db(sq, new.billed_period_start), new.coupon_periods_used,
            to_db(sq, new.next_action_at), new.id,
        )  # fmt: skip
    return False, (
        new.status, new.interval, new.interval_count, to_db(sq, new.billing_anchor),
        new.period_index, to_db(sq, new.current_period_start),
        to_db(sq, new.current_period_end), to_db(sq, new.billed_period_start),
        to_db(sq, new.trial_end), new.cancel_at_period_end,
        to_db(sq, new.canceled_at), new.coupon_id, new.coupon_periods_used,
        new.pending_change_json, to_db(sq, new.next_action_at), new.id,
    )  # fmt: skip


def bill_states(
    conn: Connection,
    states: Sequence[SubState],
    as_of: datetime,
    catalog: CatalogSnapshot,
    *,
    finalize: bool = True,
    customers: dict[int, CustomerTax] | None = None,
) -> tuple[list[int], int]:
    """Advance subscriptions to as_of and write invoices, events and new states in `conn`.

    Returns the new invoice ids and the number of events."""
    if not states:
        return [], 0
    if customers is None:
        customers = load_customer_tax(conn, (st.customer_id for st in states))
    balances = load_balances(conn, (st.customer_id for st in states))
    sq = is_sqlite(conn)
    drafts, events, updates, light, changed = [], [], [], [], []
    memo: dict[tuple, Any] = {}
    for st in states:
        key = (st.customer_id, st.currency)
        res = advance(st, as_of, catalog, customers[st.customer_id], balances.get(key, 0), memo)
        balances[key] = balances.get(key, 0) - res.credit_used_minor
        drafts.extend(res.invoices)
        events.extend(res.events)
        new = res.state
        narrow, row = _state_update(sq, st, new)
        (light if narrow else updates).append(row)
        if res.items_changed:
            changed.append(new)
    ids, line_ids = insert_invoices_and_lines(
        conn, drafts, finalize=finalize, created_at=as_of, prefix=catalog.invoice_prefix
    )
    record_invoiced(conn, drafts, ids, line_ids)
    p = ph(conn)
    assignments = ", ".join(f"{c} = {p}" for c in (*_UPDATE_COLS, "next_action_at"))
    if updates:
        sql_many(conn, f"UPDATE subscriptions SET {assignments} WHERE id = {p}", updates)
    if light:
        sql_many(
            conn,
            f"UPDATE subscriptions SET billed_period_start = {p}, coupon_periods_used = {p}, "
            f"next_action_at = {p} WHERE id = {p}",
            light,
        )
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
    p = ph(conn)
    sql_many(
        conn,
        "INSERT INTO subscription_events (subscription_id, at, kind, from_status, to_status, "
        f"detail_json) VALUES ({p}, {p}, {p}, {p}, {p}, {p})",
        [
            (e.subscription_id, to_db(sq, e.at), e.kind, e.from_status, e.to_status,
             json.dumps(e.detail) if e.detail is not None else None)
            for e in events
        ],
    )  # fmt: skip
    return ids, len(events)


_DATETIME_COLS = frozenset(
    {
        "billing_anchor",
        "current_period_start",
        "current_period_end",
        "billed_period_start",
        "trial_end",
        "canceled_at",
    }
)


def _load_due_batch(
    conn: Connection, as_of: datetime, batch_size: int, ids: Sequence[int] | None
) -> tuple[list[SubState], dict[int, CustomerTax]]:
    """Due subscriptions with their customer's tax facts and items, in two round trips."""
    sq, p = is_sqlite(conn), ph(conn)
    cols = ", ".join(f"s.{c}" for c in _SUB_STATE_COLS)
    where = ["s.status IN ('trialing', 'active', 'past_due')", f"s.next_action_at <= {p}"]
    params: list[Any] = [to_db(sq, as_of)]
    if ids is not None:
        where.append(f"s.id IN ({', '.join([p] * len(ids))})")
        params.extend(ids)
    sql = (
        f"SELECT {cols}, c.state_code, c.gstin, c.tax_status FROM subscriptions s "
        f"JOIN customers c ON c.id = s.customer_id WHERE {' AND '.join(where)} "
        f"ORDER BY s.next_action_at LIMIT {int(batch_size)}"
    )
    # Walking the (next_action_at, status) index means each batch reads only its own rows:
    # billed subscriptions move past as_of and drop out of the range.
    if not sq:
        # Concurrent runs split the work instead of queueing behind each other's rows.
        sql += " FOR UPDATE OF s SKIP LOCKED"
    # Plain DBAPI cursor: SQLAlchemy Row objects cost more than the query itself here.
    cur = conn.connection.cursor()
    try:
        cur.execute(sql, tuple(params))
        rows = cur.fetchall()
    finally:
        cur.close()
    if not rows:
        return [], {}
    n = len(_SUB_STATE_COLS)
    dt_idx = [i for i, c in enumerate(_SUB_STATE_COLS) if c in _DATETIME_COLS]
    sub_ids = [r[0] for r in rows]
    items: dict[int, list[tuple[int, int]]] = {i: [] for i in sub_ids}
    item_sql = (
        "SELECT subscription_id, plan_id, quantity FROM subscription_items "
        f"WHERE subscription_id IN ({', '.join([p] * len(sub_ids))}) ORDER BY id"
    )
    for sid, pid, qty in conn.exec_driver_sql(item_sql, tuple(sub_ids)):
        items[sid].append((pid, qty))
    states, customers = [], {}
    for r in rows:
        vals = list(r[:n])
        for i in dt_idx:
            vals[i] = from_db(vals[i])
        vals[12] = bool(vals[12])  # cancel_at_period_end
        st = SubState(*vals, items=items[r[0]])
        states.append(st)
        customers[st.customer_id] = CustomerTax(r[n], r[n + 1], r[n + 2])
    return states, customers


def _run_batch(
    conn: Connection,
    as_of: datetime,
    batch_size: int,
    ids: Sequence[int] | None,
    catalog: CatalogSnapshot,
    finalize: bool,
    result: BillingRunResult,
) -> bool:
    states, customers = _load_due_batch(conn, as_of, batch_size, ids)
    if not states:
        return False
    if any(p not in catalog.plans for st in states for p, _ in st.items):
        catalog.__dict__.update(load_snapshot(conn).__dict__)  # catalog grew during the run
    new_ids, n_events = bill_states(
        conn, states, as_of, catalog, finalize=finalize, customers=customers
    )
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
    catalog: CatalogSnapshot | None = None,
) -> BillingRunResult:
    """Bill everything due at `as_of`: end trials, renew periods, apply scheduled changes and
    cancellations, and create + finalize one invoice per subscription period.

    With an Engine each batch is its own transaction (crash-safe: a batch is all or nothing
    and a rerun continues where it stopped). With a Connection or Session everything happens
    in the caller's transaction. Running twice for the same as_of creates nothing new.
    `catalog` saves re-reading an unchanged catalog (a caller billing day after day); a plan
    missing from it is still picked up from the ledger."""
    as_of = require_aware(as_of, "as_of")
    result = BillingRunResult(as_of=as_of.isoformat())
    if isinstance(target, Engine):
        if catalog is None:
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
        catalog = catalog or load_snapshot(conn)
        while _run_batch(conn, as_of, batch_size, subscription_ids, catalog, finalize, result):
            pass
    return result
