"""A subscription's stored state: load and save it (DBAPI cursor), record its events, catch it up
to an instant, resolve plan items against the catalog, and read it back as JSON."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Boolean, Connection, select

from billing_jobs.catalog.snapshot import CatalogSnapshot, PlanInfo
from billing_jobs.errors import NotFoundError, ValidationError
from billing_jobs.inputs import MAX_QUANTITY
from billing_jobs.ledger import schema as s
from billing_jobs.ledger.rawsql import from_db, is_sqlite, ph, sql_insert, sql_rows, to_db
from billing_jobs.ledger.schema import UTCDateTime
from billing_jobs.ledger.session import Target, write_conn
from billing_jobs.periods import period_bounds
from billing_jobs.subscriptions.billing_run import bill_states, event_rows
from billing_jobs.subscriptions.lifecycle import INVOICING, Event, Status, SubState

STATE_COLS = [c for c in SubState.__dataclass_fields__ if c != "items"]


def positive_quantity(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValidationError(f"{what} must be a positive integer, got {value!r}")
    if value > MAX_QUANTITY:
        raise ValidationError(f"{what} {value} is above the limit of {MAX_QUANTITY}")
    return value


def check_plan(plan: PlanInfo, currency: str, interval: tuple[str, int] | None) -> None:
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


def load_state(conn: Connection, sub_id: int) -> SubState:
    p = ph(conn)
    lock = "" if is_sqlite(conn) else " FOR UPDATE"
    rows = sql_rows(
        conn, f"SELECT {', '.join(STATE_COLS)} FROM subscriptions WHERE id = {p}{lock}", (sub_id,)
    )
    if not rows:
        raise NotFoundError(f"subscription {sub_id} does not exist")
    vals = [from_db(v) if c in _DT_COLS else v for c, v in zip(STATE_COLS, rows[0], strict=True)]
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


def load_for_change(conn: Connection, sub_id: int, at: datetime) -> SubState:
    st = load_state(conn, sub_id)
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


def save_state(conn: Connection, st: SubState, *, items: bool = False) -> None:
    sq, p = is_sqlite(conn), ph(conn)
    values = {c: getattr(st, c) for c in STATE_COLS if c not in ("id", "customer_id")}
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


def catch_up(conn: Connection, sub_id: int, at: datetime, catalog: CatalogSnapshot) -> SubState:
    """Bring the subscription to `at` (bill what was due) before changing it."""
    st = load_for_change(conn, sub_id, at)
    if st.status in (Status.TRIALING.value, *INVOICING) and st.next_action_at <= at:
        bill_states(conn, [st], at, catalog)
        st = load_state(conn, sub_id)
    return st


def resolve_items(
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
        check_plan(new_plan, currency, interval)
        base_id = new_plan.id
    if base_id is None:
        raise ValidationError("a subscription needs a base plan")
    if quantity is not None:
        base_q = positive_quantity(quantity, "quantity")
    items = [(base_id, base_q)]
    by_code = {catalog.plan(p).code: (p, q) for p, q in extras}
    for code, qty in (addons or {}).items():
        if isinstance(qty, bool) or not isinstance(qty, int) or not 0 <= qty <= MAX_QUANTITY:
            raise ValidationError(
                f"add-on {code!r} quantity must be in 0..{MAX_QUANTITY}, got {qty!r}"
            )
        if qty == 0:
            by_code.pop(code, None)
            continue
        if code in by_code:
            by_code[code] = (by_code[code][0], qty)
            continue
        addon = catalog.current_plan(code)
        if not addon.is_addon:
            raise ValidationError(f"{code!r} is a base plan, not an add-on")
        check_plan(
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
    check_plan(base, currency, None)
    interval = (base.interval, base.interval_count)
    items = resolve_items(catalog, [(base.id, quantity)], currency, interval, None, None, addons)
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


def list_subscriptions(
    target: Target,
    *,
    customer_id: int | None = None,
    status: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Subscriptions by id: status, current period, items (plan code x quantity)."""
    if status is not None and status not in {x.value for x in Status}:
        raise ValidationError(
            f"unknown status {status!r}; choose one of {', '.join(x.value for x in Status)}"
        )
    sub, it, pl = s.subscriptions, s.subscription_items, s.plans
    q = select(sub).order_by(sub.c.id).limit(limit).offset(offset)
    if customer_id is not None:
        q = q.where(sub.c.customer_id == customer_id)
    if status is not None:
        q = q.where(sub.c.status == status)
    with write_conn(target) as conn:
        rows = conn.execute(q).all()
        items: dict[int, list[dict[str, Any]]] = {}
        if rows:
            iq = (
                select(it.c.subscription_id, pl.c.code, pl.c.version, it.c.quantity)
                .join(pl, pl.c.id == it.c.plan_id)
                .where(it.c.subscription_id.in_([r.id for r in rows]))
                .order_by(it.c.id)
            )
            for sid, code, version, qty in conn.execute(iq):
                items.setdefault(sid, []).append(
                    {"plan": code, "plan_version": version, "quantity": qty}
                )
    keys = ("id", "customer_id", "status", "currency", "interval", "interval_count",
            "current_period_start", "current_period_end", "cancel_at_period_end", "canceled_at",
            "created_at")  # fmt: skip
    return [
        {k: _sub_value(sub.c[k], getattr(r, k)) for k in keys} | {"items": items.get(r.id, [])}
        for r in rows
    ]
