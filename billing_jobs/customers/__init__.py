"""Customers: validated creation and update (state code, GSTIN checksum, tax status, address),
lookup and listing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from billing_jobs import inputs
from billing_jobs.errors import NotFoundError, ValidationError
from billing_jobs.ledger import schema as s
from billing_jobs.ledger.serialize import row_dict
from billing_jobs.ledger.session import Target, write_conn
from billing_jobs.money import MoneyError, normalize_currency
from billing_jobs.periods import require_aware
from billing_jobs.tax.gst import TaxStatus, validate_gstin, validate_state_code


def customer_fields(
    *,
    name: str,
    state_code: str,
    currency: str,
    now: datetime,
    email: str | None = None,
    gstin: str | None = None,
    tax_status: str = "regular",
    locale: str = "en_IN",
    address_line: str = "",
    city: str = "",
    postal_code: str = "",
    country: str = "IN",
    external_ref: str | None = None,
) -> dict[str, Any]:
    """The customers row for these arguments after validating every field (state code,
    GSTIN checksum, tax status rules); raises ValidationError. Shared by `create_customer`
    and the batched `create_customers`."""
    now = require_aware(now, "now")
    name = inputs.name(name)
    email = inputs.email(email) if email else None
    c = s.customers.c
    address_line, city, postal_code = (
        inputs.text(v, f, max_len=col.type.length, allow_empty=True)
        for v, f, col in ((address_line, "address_line", c.address_line), (city, "city", c.city),
                          (postal_code, "postal_code", c.postal_code))
    )  # fmt: skip
    locale = inputs.text(locale, "locale", max_len=c.locale.type.length)
    if external_ref is not None:
        external_ref = inputs.text(external_ref, "external_ref", max_len=c.external_ref.type.length)
    try:
        status = TaxStatus(tax_status)
    except ValueError as exc:
        raise ValidationError(
            f"tax_status {tax_status!r} is not one of regular, sez, export"
        ) from exc
    try:
        currency = normalize_currency(currency)
    except MoneyError as exc:
        raise ValidationError(str(exc)) from exc
    state_code = validate_state_code(state_code)
    if gstin:
        gstin = validate_gstin(gstin)  # the checksum first: its message is the most useful
        if status is not TaxStatus.EXPORT:
            gstin = inputs.gstin(gstin, state_code)
    if status is TaxStatus.EXPORT:
        if gstin:
            raise ValidationError("an export customer (outside India) cannot have a GSTIN")
        if state_code != "96":
            raise ValidationError("export customers use state code 96 (Other Countries)")
    elif state_code in ("96", "97") and status is TaxStatus.REGULAR:
        raise ValidationError(f"state code {state_code} is only for exports; use tax_status=export")
    if status is TaxStatus.SEZ and not gstin:
        raise ValidationError("an SEZ customer must have a GSTIN")
    return {
        "name": name,
        "email": email,
        "state_code": state_code,
        "gstin": gstin or None,
        "tax_status": status.value,
        "locale": locale,
        "currency": currency,
        "address_line": address_line,
        "city": city,
        "postal_code": postal_code,
        "country": country,
        "external_ref": external_ref,
        "created_at": now,
    }


def create_customer(
    target: Target,
    *,
    name: str,
    state_code: str,
    currency: str,
    now: datetime,
    email: str | None = None,
    gstin: str | None = None,
    tax_status: str = "regular",
    locale: str = "en_IN",
    address_line: str = "",
    city: str = "",
    postal_code: str = "",
    country: str = "IN",
    external_ref: str | None = None,
) -> dict[str, Any]:
    """Create a customer after validating every field; returns the stored customer."""
    row = customer_fields(
        name=name, state_code=state_code, currency=currency, now=now, email=email, gstin=gstin,
        tax_status=tax_status, locale=locale, address_line=address_line, city=city,
        postal_code=postal_code, country=country, external_ref=external_ref,
    )  # fmt: skip
    with write_conn(target) as conn:
        if external_ref is not None:
            dup = conn.execute(
                select(s.customers.c.id).where(s.customers.c.external_ref == external_ref)
            ).first()
            if dup:
                raise ValidationError(f"a customer with external_ref {external_ref!r} exists")
        cid = conn.execute(insert(s.customers).returning(s.customers.c.id), row).scalar_one()
        return get_customer(conn, cid)


UPDATABLE = ("name", "email", "state_code", "gstin", "tax_status", "locale", "address_line",
             "city", "postal_code", "country")  # fmt: skip


def update_customer(
    target: Target, customer_id: int, *, now: datetime, **changes: Any
) -> dict[str, Any]:
    """Change a customer's name, contact, tax or address fields (every rule of
    `customer_fields` applies to the result); the currency never changes. Returns the
    customer. Only later documents use the new details: issued ones keep what they printed
    (`gstin=""` removes a GSTIN)."""
    unknown = set(changes) - set(UPDATABLE)
    if unknown:
        raise ValidationError(
            f"cannot update {', '.join(sorted(unknown))}; updatable: {', '.join(UPDATABLE)}"
        )
    given = {k: v for k, v in changes.items() if v is not None}
    if not given:
        raise ValidationError("nothing to update: give at least one field")
    with write_conn(target) as conn:
        row = customer_row(conn, customer_id)
        merged = {k: getattr(row, k) for k in UPDATABLE} | given
        fields = customer_fields(
            currency=row.currency, now=require_aware(now, "now"), external_ref=row.external_ref,
            **merged,
        )  # fmt: skip
        values = {k: fields[k] for k in UPDATABLE}
        conn.execute(update(s.customers).where(s.customers.c.id == customer_id).values(**values))
        return get_customer(conn, customer_id)


def list_customers(
    target: Target, *, limit: int = 100, offset: int = 0, search: str | None = None
) -> list[dict[str, Any]]:
    """Customers by id with their credit balance (`search`: part of the name or e-mail)."""
    c, b = s.customers, s.customer_balance_transactions
    balance = (
        select(func.coalesce(func.sum(b.c.amount_minor), 0))
        .where(b.c.customer_id == c.c.id, b.c.currency == c.c.currency)
        .scalar_subquery()
    )
    q = select(c, balance.label("credit_balance_minor")).order_by(c.c.id)
    if search:
        like = f"%{search.lower()}%"
        q = q.where(func.lower(c.c.name).like(like) | func.lower(c.c.email).like(like))
    with write_conn(target) as conn:
        rows = conn.execute(q.limit(limit).offset(offset)).all()
    return [row_dict(r) for r in rows]


def customer_row(conn: Connection, customer_id: int) -> Any:
    row = conn.execute(select(s.customers).where(s.customers.c.id == customer_id)).first()
    if row is None:
        raise NotFoundError(f"customer {customer_id} does not exist")
    return row


def credit_balance(conn: Connection, customer_id: int, currency: str) -> int:
    """Credit available to the customer in `currency` (minor units)."""
    t = s.customer_balance_transactions
    q = select(func.coalesce(func.sum(t.c.amount_minor), 0)).where(
        t.c.customer_id == customer_id, t.c.currency == currency
    )
    return int(conn.execute(q).scalar_one())


def get_customer(target: Target, customer_id: int) -> dict[str, Any]:
    """The customer with its credit balance."""
    with write_conn(target) as conn:
        row = customer_row(conn, customer_id)
        out = row_dict(row)
        out["credit_balance_minor"] = credit_balance(conn, customer_id, row.currency)
        return out
