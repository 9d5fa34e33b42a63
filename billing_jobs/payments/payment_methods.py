"""Customers' payment methods on the ledger: add (attach at the gateway, store only tokens and
display details), list, remove, set default, and link gateway customers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update

from billing_jobs.errors import NotFoundError
from billing_jobs.ledger import schema as s
from billing_jobs.ledger.schema import (
    payments_collection_state,
    payments_gateway_customers,
    payments_method_details,
)
from billing_jobs.payments.gateway import Gateway, GatewayError
from billing_jobs.payments.method_rules import (
    MANDATES,
    StoredPaymentMethod,
    validate_payment_method,
)
from billing_jobs.payments.state import PaymentsError, aware, customer_row, gateway_customer_of


def _method_dict(m: Any) -> dict[str, Any]:
    return {
        "id": m.id, "customer_id": m.customer_id, "gateway": m.gateway, "token": m.gateway_token,
        "kind": m.kind, "label": m.label, "is_default": bool(m.is_default),
        "brand": m.brand, "last4": m.last4, "exp_month": m.exp_month, "exp_year": m.exp_year,
        "mandate_ref": m.mandate_ref, "created_at": m.created_at.isoformat(),
    }  # fmt: skip


def _methods_query(customer_id: int) -> Any:
    t, d = s.payment_methods, payments_method_details
    return (
        select(t, d.c.brand, d.c.last4, d.c.exp_month, d.c.exp_year, d.c.max_amount_minor)
        .select_from(t.outerjoin(d, d.c.payment_method_id == t.c.id))
        .where(t.c.customer_id == customer_id, t.c.removed_at.is_(None))
        .order_by(t.c.id)
    )


def _new_gateway_customer(engine: Engine, gateway: Gateway, cust: Any, now: datetime) -> str:
    """Create the customer at the gateway and remember the link; the gateway's customer id."""
    gcus = gateway.create_customer(
        email=cust.email, name=cust.name, metadata={"paysight_customer_id": str(cust.id)}
    ).gateway_customer_id
    with engine.begin() as conn:
        conn.execute(
            insert(payments_gateway_customers),
            {"customer_id": cust.id, "gateway": gateway.name, "gateway_customer_id": gcus,
             "created_at": now},
        )  # fmt: skip
    return gcus


def _label(method: StoredPaymentMethod, pm: Any) -> str:
    """What the customer sees, e.g. "Visa •••• 4242 HDFC" (never more than the last four)."""
    last4 = pm.last4 or method.last4
    parts = (pm.brand or method.brand or method.kind.value, f"•••• {last4}" if last4 else None,
             method.vpa, pm.issuer)  # fmt: skip
    return " ".join(x for x in parts if x)[:64]


def add_payment_method(
    engine: Engine,
    gateway: Gateway,
    customer_id: int,
    data: dict[str, Any],
    now: datetime,
    *,
    make_default: bool | None = None,
) -> dict[str, Any]:
    """Validate `data` (a gateway token plus display details), attach it at the gateway and
    store only token/kind/brand/last4/expiry. The first method becomes the default."""
    now = aware(now)
    with engine.connect() as conn:
        cust = customer_row(conn, customer_id)
    data = dict(data)
    data.setdefault("currency", cust.currency)  # a UPI method for a USD customer is refused
    method = validate_payment_method(data, now.date())
    with engine.connect() as conn:
        gcus = gateway_customer_of(conn, customer_id, gateway.name)
        existing = conn.execute(
            _methods_query(customer_id).where(s.payment_methods.c.gateway == gateway.name)
        ).all()
    if gcus is None:
        gcus = _new_gateway_customer(engine, gateway, cust, now)
    pm = gateway.attach_payment_method(gcus, method.token)
    mismatch = _gateway_mismatch(method, pm)
    if mismatch:
        gateway.detach_payment_method(pm.token)
        raise PaymentsError(f"the gateway's payment method does not match the input: {mismatch}")
    if any(m.gateway_token == pm.token for m in existing):
        raise PaymentsError(f"payment method {pm.token} is already on customer {customer_id}")
    default = (not existing) if make_default is None else make_default
    t = s.payment_methods
    label = _label(method, pm)
    with engine.begin() as conn:
        if default:
            conn.execute(
                update(t).where(t.c.customer_id == customer_id, t.c.removed_at.is_(None))
                .values(is_default=False)
            )  # fmt: skip
        # A method removed earlier and added again reuses its row (tokens are unique).
        old = conn.execute(
            select(t.c.id).where(t.c.gateway == gateway.name, t.c.gateway_token == pm.token)
        ).scalar_one_or_none()
        values = {"customer_id": customer_id, "gateway": gateway.name, "gateway_token": pm.token,
                  "kind": method.kind.value, "label": label, "is_default": default,
                  "mandate_ref": f"mdt_{pm.token[-12:]}" if method.kind in MANDATES else None,
                  "created_at": now, "removed_at": None}  # fmt: skip
        if old is None:
            pm_id = conn.execute(insert(t).returning(t.c.id), values).scalar_one()
        else:
            pm_id = old
            conn.execute(update(t).where(t.c.id == old).values(**values))
            conn.execute(
                payments_method_details.delete().where(
                    payments_method_details.c.payment_method_id == old
                )
            )
        conn.execute(
            insert(payments_method_details),
            {"payment_method_id": pm_id, "brand": pm.brand or method.brand,
             "last4": pm.last4 or method.last4, "exp_month": pm.exp_month or method.exp_month,
             "exp_year": pm.exp_year or method.exp_year, "issuer": pm.issuer or method.issuer,
             "max_amount_minor": method.max_amount_minor},
        )  # fmt: skip
        if default:
            _retry_now(conn, customer_id, gateway.name, now)
        row = conn.execute(_methods_query(customer_id).where(t.c.id == pm_id)).one()
    return _method_dict(row)


def _gateway_mismatch(method: StoredPaymentMethod, pm: Any) -> str | None:
    if pm.kind != method.kind.value:
        return f"kind {pm.kind!r} at the gateway, {method.kind.value!r} given"
    if method.last4 and pm.last4 and pm.last4 != method.last4:
        return f"last4 {pm.last4} at the gateway, {method.last4} given"
    if (
        method.exp_year
        and pm.exp_year
        and (pm.exp_year, pm.exp_month)
        != (
            method.exp_year,
            method.exp_month,
        )
    ):
        return "card expiry differs from the gateway's"
    return None


def _retry_now(conn: Any, customer_id: int, gateway: str, now: datetime) -> None:
    """A new default method makes failing invoices retry at once (as Stripe does)."""
    cs, inv = payments_collection_state, s.invoices
    ids = conn.execute(
        select(cs.c.invoice_id)
        .select_from(cs.join(inv, inv.c.id == cs.c.invoice_id))
        .where(inv.c.customer_id == customer_id, inv.c.status == "open", cs.c.closed == 0,
               cs.c.gateway == gateway, cs.c.dunning_json.is_not(None))
    ).scalars().all()  # fmt: skip
    if ids:
        conn.execute(
            update(cs).where(cs.c.invoice_id.in_(ids)).values(next_retry_at=now, updated_at=now)
        )


def link_gateway_customer(
    engine: Engine, customer_id: int, gateway_name: str, gateway_customer_id: str, now: datetime
) -> bool:
    """Record which gateway customer a ledger customer is (for customers created at the gateway
    elsewhere, e.g. by the simulator). Idempotent; refuses to re-point an existing link."""
    now = aware(now)
    if not gateway_customer_id:
        raise PaymentsError("a gateway customer id is required")
    with engine.begin() as conn:
        customer_row(conn, customer_id)
        current = gateway_customer_of(conn, customer_id, gateway_name)
        if current == gateway_customer_id:
            return False
        if current is not None:
            raise PaymentsError(
                f"customer {customer_id} is already {current} at {gateway_name}, "
                f"not {gateway_customer_id}"
            )
        conn.execute(
            insert(payments_gateway_customers),
            {"customer_id": customer_id, "gateway": gateway_name,
             "gateway_customer_id": gateway_customer_id, "created_at": now},
        )  # fmt: skip
    return True


def list_payment_methods(engine: Engine, customer_id: int) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        customer_row(conn, customer_id)
        return [_method_dict(m) for m in conn.execute(_methods_query(customer_id))]


def _owned_method(conn: Any, customer_id: int, method_id: int) -> Any:
    customer_row(conn, customer_id)
    m = conn.execute(_methods_query(customer_id).where(s.payment_methods.c.id == method_id)).first()
    if m is None:
        raise NotFoundError(f"customer {customer_id} has no payment method {method_id}")
    return m


def remove_payment_method(
    engine: Engine, gateway: Gateway, customer_id: int, method_id: int, now: datetime
) -> dict[str, Any]:
    """Detach at the gateway and mark removed (the row stays for history)."""
    now = aware(now)
    with engine.connect() as conn:
        m = _owned_method(conn, customer_id, method_id)
    if m.gateway != gateway.name:
        raise PaymentsError(
            f"payment method {method_id} belongs to {m.gateway}, not {gateway.name}"
        )
    try:
        gateway.detach_payment_method(m.gateway_token)
    except GatewayError as e:
        if e.__class__.__name__ != "NotFound":
            raise  # already detached at the gateway is fine; anything else is not
    t = s.payment_methods
    with engine.begin() as conn:
        conn.execute(update(t).where(t.c.id == method_id).values(removed_at=now, is_default=False))
    out = _method_dict(m)
    out.update(is_default=False, removed_at=now.isoformat())
    return out


def set_default_payment_method(
    engine: Engine, customer_id: int, method_id: int, now: datetime
) -> dict[str, Any]:
    now = aware(now)
    t = s.payment_methods
    with engine.begin() as conn:
        m = _owned_method(conn, customer_id, method_id)
        conn.execute(
            update(t).where(t.c.customer_id == customer_id, t.c.removed_at.is_(None))
            .values(is_default=t.c.id == method_id)
        )  # fmt: skip
        _retry_now(conn, customer_id, m.gateway, now)
        return _method_dict(
            conn.execute(_methods_query(customer_id).where(t.c.id == method_id)).one()
        )
