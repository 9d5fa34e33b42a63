"""Subscription service: create, change (prorated or at period end), pause, resume, cancel."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Boolean, Connection, insert, select, update

from billing_jobs.catalog.snapshot import CatalogSnapshot, PlanInfo, load_snapshot
from billing_jobs.customers import credit_balance, customer_row
from billing_jobs.errors import InvalidTransitionError, NotFoundError, ValidationError
from billing_jobs.invoicing.builder import CustomerTax, LineInput, build_invoice
from billing_jobs.invoicing.credit_notes import CreditLine, issue_credit_note, unused_time_lines
from billing_jobs.invoicing.invoices import get_invoice
from billing_jobs.invoicing.store import insert_invoices
from billing_jobs.ledger import schema as s
from billing_jobs.ledger.idempotency import run_idempotent
from billing_jobs.ledger.rawsql import from_db, is_sqlite, ph, sql_insert, sql_rows, to_db
from billing_jobs.ledger.schema import UTCDateTime
from billing_jobs.ledger.session import Target, write_conn
from billing_jobs.periods import IST, period_bounds, require_aware
from billing_jobs.subscriptions.billing_run import bill_states, event_rows
from billing_jobs.subscriptions.lifecycle import (
    INVOICING,
    Event,
    Status,
    SubState,
    check_transition,
)
from billing_jobs.subscriptions.proration import prorate_minor, proration_factor
from billing_jobs.tax.gst import gst_rate_bp

_STATE_COLS = [c for c in SubState.__dataclass_fields__ if c != "items"]


def _qty(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValidationError(f"{what} must be a positive integer, got {value!r}")
    return value


def _check_plan(plan: PlanInfo, currency: str, interval: tuple[str, int] | None) -> None:
    if currency not in plan.prices:
        raise ValidationError(
            f"plan {plan.code!r} has no {currency} price (priced in "
            f"{', '.join(sorted(plan.prices))}); the customer is billed in {currency}"
        )
    if interval is not None and (plan.interval, plan.interval_count) != interval:
        raise ValidationError(
            f"plan {plan.code!r} bills every {plan.interval_count} {plan.interval}(s) but the "
            f"subscription bills every {interval[1]} {interval[0]}(s); changing the billing "
            "interval is not supported, cancel and create a new subscription"
        )


# The helpers below run on the DBAPI cursor: every subscription operation goes through them,
# and SQLAlchemy's per-statement overhead was most of their cost (bulk callers, the simulator).
_DT_COLS = frozenset(c.name for c in s.subscriptions.columns if isinstance(c.type, UTCDateTime))


def _load_state(conn: Connection, sub_id: int) -> SubState:
    p = ph(conn)
    lock = "" if is_sqlite(conn) else " FOR UPDATE"
    rows = sql_rows(
        conn, f"SELECT {', '.join(_STATE_COLS)} FROM subscriptions WHERE id = {p}{lock}", (sub_id,)
    )
    if not rows:
        raise NotFoundError(f"subscription {sub_id} does not exist")
    vals = [from_db(v) if c in _DT_COLS else v for c, v in zip(_STATE_COLS, rows[0], strict=True)]
    st = SubState(*vals)
    st.cancel_at_period_end = bool(st.cancel_at_period_end)
    st.items = [
        (pid, qty)
        for pid, qty in sql_rows(
            conn,
            f"SELECT plan_id, quantity FROM subscription_items WHERE subscription_id = {p} "
            "ORDER BY id",
            (sub_id,),
        )
    ]
    return st


def _load_for_change(conn: Connection, sub_id: int, at: datetime) -> SubState:
    st = _load_state(conn, sub_id)
    _check_not_backdated(conn, sub_id, at)
    return st


def _check_not_backdated(conn: Connection, sub_id: int, at: datetime) -> None:
    """Refuse operations dated before the subscription's latest recorded event: history is
    append-only and prorations must not be computed against a period already moved past."""
    (raw,) = sql_rows(
        conn,
        f"SELECT max(at) FROM subscription_events WHERE subscription_id = {ph(conn)}",
        (sub_id,),
    )[0]
    latest = from_db(raw)
    if latest is not None and at < latest:
        raise ValidationError(
            f"subscription {sub_id} already has history up to {latest.isoformat()}; an "
            f"operation at {at.isoformat()} would be backdated"
        )


def _save_state(conn: Connection, st: SubState, *, items: bool = False) -> None:
    sq, p = is_sqlite(conn), ph(conn)
    values = {c: getattr(st, c) for c in _STATE_COLS if c not in ("id", "customer_id")}
    values["next_action_at"] = st.next_action_at
    for c in values:
        if c in _DT_COLS:
            values[c] = to_db(sq, values[c])
    sets = ", ".join(f"{c} = {p}" for c in values)
    sql_rows(conn, f"UPDATE subscriptions SET {sets} WHERE id = {p}", (*values.values(), st.id))
    if items:
        sql_rows(conn, f"DELETE FROM subscription_items WHERE subscription_id = {p}", (st.id,))
        sql_insert(conn, "subscription_items", ("subscription_id", "plan_id", "quantity"),
                   [(st.id, pid, q) for pid, q in st.items])  # fmt: skip


def record_events(conn: Connection, *events: Event) -> None:
    sq = is_sqlite(conn)
    sql_insert(
        conn, "subscription_events",
        ("subscription_id", "at", "kind", "from_status", "to_status", "detail_json"),
        [(r["subscription_id"], to_db(sq, r["at"]), r["kind"], r["from_status"], r["to_status"],
          r["detail_json"]) for r in event_rows(events)],
    )  # fmt: skip


def _catch_up(conn: Connection, sub_id: int, at: datetime, catalog: CatalogSnapshot) -> SubState:
    """Bring the subscription to `at` (bill what was due) before changing it."""
    st = _load_for_change(conn, sub_id, at)
    if st.status in (Status.TRIALING.value, *INVOICING) and st.next_action_at <= at:
        bill_states(conn, [st], at, catalog)
        st = _load_state(conn, sub_id)
    return st


def _resolve_items(
    catalog: CatalogSnapshot,
    current: list[tuple[int, int]],
    currency: str,
    interval: tuple[str, int] | None,
    plan: str | None,
    quantity: int | None,
    addons: Mapping[str, int] | None,
) -> list[tuple[int, int]]:
    """New (plan_id, quantity) items. Unchanged plan codes keep their version (and price)."""
    base = [(p, q) for p, q in current if not catalog.plan(p).is_addon]
    extras = [(p, q) for p, q in current if catalog.plan(p).is_addon]
    if base:
        base_id, base_q = base[0]
    else:
        base_id, base_q = None, 1
    if plan is not None and (base_id is None or catalog.plan(base_id).code != plan):
        new_plan = catalog.current_plan(plan)
        if new_plan.is_addon:
            raise ValidationError(f"{plan!r} is an add-on; pass it in addons")
        _check_plan(new_plan, currency, interval)
        base_id = new_plan.id
    if base_id is None:
        raise ValidationError("a subscription needs a base plan")
    if quantity is not None:
        base_q = _qty(quantity, "quantity")
    items = [(base_id, base_q)]
    by_code = {catalog.plan(p).code: (p, q) for p, q in extras}
    for code, qty in (addons or {}).items():
        if isinstance(qty, bool) or not isinstance(qty, int) or qty < 0:
            raise ValidationError(f"add-on {code!r} quantity must be >= 0, got {qty!r}")
        if qty == 0:
            by_code.pop(code, None)
            continue
        if code in by_code:
            by_code[code] = (by_code[code][0], qty)
            continue
        addon = catalog.current_plan(code)
        if not addon.is_addon:
            raise ValidationError(f"{code!r} is a base plan, not an add-on")
        _check_plan(
            addon,
            currency,
            interval or (catalog.plan(base_id).interval, catalog.plan(base_id).interval_count),
        )
        by_code[code] = (addon.id, qty)
    items.extend(by_code[c] for c in sorted(by_code))
    return items


def new_subscription_state(
    catalog: CatalogSnapshot,
    customer_id: int,
    currency: str,
    plan: str,
    start: datetime,
    quantity: int = 1,
    addons: Mapping[str, int] | None = None,
    coupon: str | None = None,
    trial_days: int | None = None,
) -> SubState:
    """The state a new subscription starts in (id 0 until inserted): validated items, coupon,
    trial or first period. Shared by create_subscription and the batched sign-ups."""
    base = catalog.current_plan(plan)
    if base.is_addon:
        raise ValidationError(f"{plan!r} is an add-on; subscribe to a base plan")
    _check_plan(base, currency, None)
    interval = (base.interval, base.interval_count)
    items = _resolve_items(catalog, [(base.id, quantity)], currency, interval, None, None, addons)
    coupon_id = None
    if coupon is not None:
        c = catalog.coupon_by_code(coupon)
        if c.currency is not None and c.currency != currency:
            raise ValidationError(
                f"coupon {coupon!r} is in {c.currency}; the customer pays in {currency}"
            )
        coupon_id = c.id
    trial = base.trial_days if trial_days is None else trial_days
    if trial:
        trial_end = start + timedelta(days=trial)
        st = SubState(
            0, customer_id, "trialing", currency, base.interval,
            base.interval_count, start, 0, start, trial_end, None, trial_end, False,
            None, coupon_id, 0, None, items,
        )  # fmt: skip
    else:
        ps, pe = period_bounds(start, base.interval, base.interval_count, 0)
        st = SubState(
            0, customer_id, "active", currency, base.interval, base.interval_count,
            start, 0, ps, pe, None, None, False, None, coupon_id, 0, None, items,
        )  # fmt: skip
    return st


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
    _qty(quantity, "quantity")
    if trial_days is not None and (not isinstance(trial_days, int) or trial_days < 0):
        raise ValidationError(f"trial_days must be a non-negative integer, got {trial_days!r}")
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
            row = {c: getattr(st, c) for c in _STATE_COLS if c != "id"}
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


def _recurring_invoice_row(conn: Connection, st: SubState) -> Any:
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
    inv = _recurring_invoice_row(conn, st)
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
        _qty(quantity, "quantity")
    request = {"sub": sub_id, "at": at, "plan": plan, "qty": quantity, "addons": addons, "w": when}
    with write_conn(target) as conn:

        def _do() -> dict[str, Any]:
            snap = catalog or load_snapshot(conn)
            st = _catch_up(conn, sub_id, at, snap)
            if st.status not in ("trialing", "active", "past_due", "paused"):
                raise InvalidTransitionError(
                    f"cannot change subscription {sub_id}: it is {st.status}"
                )
            new_items = _resolve_items(
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
                _save_state(conn, st)
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
                _save_state(conn, st, items=True)
                record_events(
                    conn,
                    Event(sub_id, at, "plan_changed", st.status, st.status,
                          {"from_items": old_items, "to_items": new_items}),
                )  # fmt: skip
            return {"subscription": get_subscription(conn, sub_id)} | result

        return run_idempotent(conn, idempotency_key, "change_subscription", request, at, _do)


def _credit_unused(
    conn: Connection, st: SubState, at: datetime, reason: str
) -> dict[str, Any] | None:
    if not (st.status in INVOICING and st.billed_period_start == st.current_period_start):
        return None
    if not st.current_period_start <= at < st.current_period_end:
        return None
    inv = _recurring_invoice_row(conn, st)
    if inv is None or inv.status not in ("open", "paid"):
        return None
    f = proration_factor(st.current_period_start, st.current_period_end, at)
    lines = unused_time_lines(conn, inv.id, f)
    if sum(x.taxable_minor for x in lines) <= 0:
        return None
    return issue_credit_note(conn, inv.id, lines, reason=reason, at=at)


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
        st = _catch_up(conn, sub_id, at, catalog)
        check_transition(sub_id, st.status, "canceled", "cancel")
        note = None
        if at_period_end:
            if st.status not in ("trialing", *INVOICING):
                raise InvalidTransitionError(
                    f"cannot cancel subscription {sub_id} at period end: it is {st.status}"
                )
            st.cancel_at_period_end = True
            _save_state(conn, st)
            record_events(conn, Event(sub_id, at, "cancel_scheduled", st.status, st.status))
        else:
            if credit_unused:
                note = _credit_unused(conn, st, at, "cancellation")
            prior = st.status
            st.status, st.canceled_at = "canceled", at
            _save_state(conn, st)
            record_events(conn, Event(sub_id, at, "canceled", prior, "canceled"))
        return {"subscription": get_subscription(conn, sub_id), "credit_note": note}


def pause_subscription(
    target: Target, sub_id: int, *, at: datetime, catalog: CatalogSnapshot | None = None
) -> dict[str, Any]:
    """Pause now: no invoices until resumed; unused paid time is credited."""
    at = require_aware(at, "at")
    with write_conn(target) as conn:
        catalog = catalog or load_snapshot(conn)
        st = _catch_up(conn, sub_id, at, catalog)
        check_transition(sub_id, st.status, "paused", "pause")
        note = _credit_unused(conn, st, at, "pause")
        prior = st.status
        st.status = "paused"
        _save_state(conn, st)
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
        st = _load_for_change(conn, sub_id, at)
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
        _save_state(conn, st)
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
        st = _load_for_change(conn, sub_id, at)
        check_transition(sub_id, st.status, to_status, f"move to {to_status}")
        if to_status in ("paused", "canceled"):
            raise InvalidTransitionError(
                f"use pause_subscription/cancel_subscription to move to {to_status}"
            )
        prior = st.status
        st.status = to_status
        _save_state(conn, st)
        record_events(
            conn, Event(sub_id, at, "status_changed", prior, to_status, {"reason": reason})
        )
        return get_subscription(conn, sub_id)


def _sub_value(col: Any, value: Any) -> Any:
    """A raw column value as SQLAlchemy would return it, then as `row_dict` serializes it."""
    if value is None:
        return None
    if isinstance(col.type, UTCDateTime):
        return from_db(value).isoformat()  # type: ignore[union-attr]
    if isinstance(col.type, Boolean):
        return bool(value)
    return value


def get_subscription(target: Target, sub_id: int) -> dict[str, Any]:
    """The subscription with items (plan code and version) and its event history."""
    with write_conn(target) as conn:
        p = ph(conn)
        cols = list(s.subscriptions.columns)
        rows = sql_rows(
            conn,
            f"SELECT {', '.join(c.name for c in cols)} FROM subscriptions WHERE id = {p}",
            (sub_id,),
        )
        if not rows:
            raise NotFoundError(f"subscription {sub_id} does not exist")
        out = {c.name: _sub_value(c, v) for c, v in zip(cols, rows[0], strict=True)}
        items = sql_rows(
            conn,
            "SELECT i.plan_id, i.quantity, p.code, p.version, p.is_addon FROM subscription_items i"
            f" JOIN plans p ON p.id = i.plan_id WHERE i.subscription_id = {p} ORDER BY i.id",
            (sub_id,),
        )
        out["items"] = [
            {"plan_id": pid, "plan": code, "plan_version": version, "quantity": qty,
             "addon": bool(addon)}
            for pid, qty, code, version, addon in items
        ]  # fmt: skip
        events = sql_rows(
            conn,
            "SELECT at, kind, from_status, to_status, detail_json FROM subscription_events"
            f" WHERE subscription_id = {p} ORDER BY id",
            (sub_id,),
        )
        out["events"] = [
            {"at": from_db(at).isoformat(), "kind": kind, "from_status": fs,  # type: ignore[union-attr]
             "to_status": ts, "detail_json": detail}
            for at, kind, fs, ts, detail in events
        ]  # fmt: skip
        return out
