"""Payments' ledger state shared by collection, the janitor, dunning, methods and payments_refunds:
the payments tables, the per-invoice collection state and the small reads every service needs."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Engine,
    func,
    insert,
    select,
    update,
)

from billing_jobs.errors import InvalidTransitionError, NotFoundError, ValidationError
from billing_jobs.ledger import schema as s
from billing_jobs.ledger.schema import (
    payments_collection_state,
    payments_gateway_customers,
    payments_method_details,
)
from billing_jobs.payments.dunning import DunningState, DunningStatus
from billing_jobs.payments.method_rules import StoredPaymentMethod, parse_kind
from billing_jobs.subscriptions.service import transition_subscription


class PaymentsError(ValidationError):
    """A payments operation was refused; the message says why and nothing was changed."""


def aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise PaymentsError("times must be timezone-aware")
    return now.astimezone(UTC)


@dataclass
class CollectionReport:
    """What a collection/retry/janitor run did, by invoice id."""

    charged: list[int] = field(default_factory=list)
    paid: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)
    collected_minor: dict[str, int] = field(default_factory=dict)
    retries_scheduled: dict[int, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["skipped"] = {str(k): v for k, v in self.skipped.items()}
        out["retries_scheduled"] = {str(k): v for k, v in self.retries_scheduled.items()}
        return out


# -- shared helpers ----------------------------------------------------------------------------
def default_method(conn: Any, customer_id: int, gateway_name: str) -> Any:
    t, d = s.payment_methods, payments_method_details
    return conn.execute(
        select(
            t, d.c.brand, d.c.last4, d.c.exp_month, d.c.exp_year, d.c.max_amount_minor, d.c.issuer
        )
        .select_from(t.outerjoin(d, d.c.payment_method_id == t.c.id))
        .where(
            t.c.customer_id == customer_id,
            t.c.gateway == gateway_name,
            t.c.removed_at.is_(None),
            t.c.is_default.is_(True),
        )
        .order_by(t.c.id.desc())
    ).first()


def gateway_customer_of(conn: Any, customer_id: int, gateway_name: str) -> str | None:
    g = payments_gateway_customers
    return conn.execute(
        select(g.c.gateway_customer_id).where(
            g.c.customer_id == customer_id, g.c.gateway == gateway_name
        )
    ).scalar_one_or_none()


def stored_method(m: Any) -> StoredPaymentMethod:
    return StoredPaymentMethod(
        kind=parse_kind(m.kind), token=m.gateway_token, brand=m.brand, last4=m.last4,
        exp_month=m.exp_month, exp_year=m.exp_year, max_amount_minor=m.max_amount_minor,
    )  # fmt: skip


def retry_features(method: Any) -> dict[str, Any]:
    """What a retry scorer may know about the payment method (never a card number or VPA)."""
    if method is None:
        return {}
    kind = parse_kind(method.kind)
    base = {"upi_mandate": "upi", "card_mandate": "card"}.get(kind.value, kind.value)
    return {"method": base, "issuer": method.issuer or method.brand or None}


def state_row(conn: Any, invoice_id: int) -> Any:
    return conn.execute(
        select(payments_collection_state).where(
            payments_collection_state.c.invoice_id == invoice_id
        )
    ).first()


def upsert_state(conn: Any, invoice_id: int, gateway: str, now: datetime, **values: Any) -> None:
    if state_row(conn, invoice_id) is None:
        conn.execute(
            insert(payments_collection_state),
            {"invoice_id": invoice_id, "gateway": gateway, "next_retry_at": None,
             "dunning_json": None, "closed": 0, "updated_at": now, **values},
        )  # fmt: skip
    else:
        conn.execute(
            update(payments_collection_state)
            .where(payments_collection_state.c.invoice_id == invoice_id)
            .values(updated_at=now, **values)
        )


def dump_dunning(st: DunningState) -> str:
    return json.dumps(
        {"invoice_id": st.invoice_id, "customer_id": st.customer_id,
         "started_at": st.started_at.astimezone(UTC).isoformat(), "status": st.status.value,
         "done_days": list(st.done_days)}
    )  # fmt: skip


def load_dunning(raw: str) -> DunningState:
    d = json.loads(raw)
    return DunningState(
        d["invoice_id"], d["customer_id"], datetime.fromisoformat(d["started_at"]),
        DunningStatus(d["status"]), tuple(d["done_days"]),
    )  # fmt: skip


def subscription_status(conn: Any, sub_id: int) -> str | None:
    return conn.execute(
        select(s.subscriptions.c.status).where(s.subscriptions.c.id == sub_id)
    ).scalar_one_or_none()


def move_subscription(
    engine: Engine, sub_id: int | None, to: str, now: datetime, reason: str
) -> bool:
    if sub_id is None:
        return False
    with engine.connect() as conn:
        current = subscription_status(conn, sub_id)
    if current is None or current == to:
        return False
    try:
        transition_subscription(engine, sub_id, to, at=now, reason=reason)
    except InvalidTransitionError:
        return False  # paused/canceled meanwhile, or the period moved on; nothing to do
    return True


def open_dunning_on_subscription(conn: Any, sub_id: int) -> bool:
    """Another open invoice of this subscription is still failing."""
    cs, inv = payments_collection_state, s.invoices
    return bool(
        conn.execute(
            select(func.count())
            .select_from(cs.join(inv, inv.c.id == cs.c.invoice_id))
            .where(
                inv.c.subscription_id == sub_id,
                inv.c.status == "open",
                cs.c.closed == 0,
                cs.c.dunning_json.is_not(None),
            )
        ).scalar_one()
    )


def ledger_customer(conn: Any, inv_id: int) -> int:
    return conn.execute(
        select(s.invoices.c.customer_id).where(s.invoices.c.id == inv_id)
    ).scalar_one()


# -- payment methods ---------------------------------------------------------------------------
def customer_row(conn: Any, customer_id: int) -> Any:
    row = conn.execute(select(s.customers).where(s.customers.c.id == customer_id)).first()
    if row is None:
        raise NotFoundError(f"customer {customer_id} does not exist")
    return row
