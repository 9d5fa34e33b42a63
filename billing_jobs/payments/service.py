"""Payments on the ledger: collect open invoices, retries, dunning, the janitor, payment methods
and refunds. Plain functions over an Engine and a `Gateway`; every result is JSON-ready.
"""

from __future__ import annotations

import json
from contextlib import suppress
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    insert,
    select,
    update,
)

from billing_jobs.errors import InvalidTransitionError, NotFoundError, ValidationError
from billing_jobs.invoicing.credit_notes import create_credit_note
from billing_jobs.invoicing.invoices import mark_invoice_paid, mark_uncollectible
from billing_jobs.ledger import schema as s
from billing_jobs.ledger.schema import UTCDateTime
from billing_jobs.money import Money, round_fraction
from billing_jobs.payments.attempt_store import LedgerAttemptStore
from billing_jobs.payments.charging import (
    AlreadyPaid,
    Attempt,
    AttemptInFlight,
    AttemptStatus,
    InvoiceCharge,
    collect_invoice,
    resolve_unknown_attempts,
    retry_context,
)
from billing_jobs.payments.dunning import (
    CLOSED,
    DunningConfig,
    DunningInvoice,
    DunningState,
    DunningStatus,
    dunning_actions,
    load_config,
    start_dunning,
)
from billing_jobs.payments.gateway import Gateway, GatewayError
from billing_jobs.payments.method_rules import (
    MANDATES,
    PaymentMethodError,
    StoredPaymentMethod,
    check_charge,
    check_refund,
    parse_kind,
    validate_payment_method,
)
from billing_jobs.payments.retries import ExponentialPolicy, RetryPolicy
from billing_jobs.subscriptions.service import cancel_subscription, transition_subscription


class PaymentsError(ValidationError):
    """A payments operation was refused; the message says why and nothing was changed."""


# Payments' own tables, beside the ledger's (created on first use; no ledger migration needed).
payments_metadata = MetaData()

gateway_customers = Table(
    "payments_gateway_customers",
    payments_metadata,
    Column("customer_id", Integer, primary_key=True),
    Column("gateway", String(32), primary_key=True),
    Column("gateway_customer_id", String(128), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

method_details = Table(
    "payments_method_details",
    payments_metadata,
    Column("payment_method_id", Integer, primary_key=True),
    Column("brand", String(32)),
    Column("last4", String(4)),
    Column("exp_month", Integer),
    Column("exp_year", Integer),
    Column("issuer", String(64)),
    Column("max_amount_minor", BigInteger),
)

collection_state = Table(
    "payments_collection_state",
    payments_metadata,
    Column("invoice_id", Integer, primary_key=True),
    Column("gateway", String(32), nullable=False),
    Column("next_retry_at", UTCDateTime(), nullable=True),
    Column("dunning_json", Text),  # the DunningState once a payment failed
    Column("closed", Integer, nullable=False, default=0),  # paid, canceled or written off
    Column("updated_at", UTCDateTime(), nullable=False),
)

dunning_notifications = Table(
    "payments_dunning_notifications",
    payments_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("invoice_id", Integer, nullable=False),
    Column("customer_id", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("template_key", String(64), nullable=False),
    Column("due_at", UTCDateTime(), nullable=False),
    Column("next_retry_at", UTCDateTime(), nullable=True),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("mail_delivery_id", Integer),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("invoice_id", "kind", "due_at", name="uq_payments_dunning_once"),
)

refunds = Table(
    "payments_refunds",
    payments_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("invoice_id", Integer, nullable=False),
    Column("gateway", String(32), nullable=False),
    Column("gateway_payment_id", String(128), nullable=False),
    Column("gateway_refund_id", String(128), nullable=False, unique=True),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("credit_note_id", Integer),
    Column("created_at", UTCDateTime(), nullable=False),
)


def ensure_payments_tables(engine: Engine) -> None:
    payments_metadata.create_all(engine)


def _aware(now: datetime) -> datetime:
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
def _default_method(conn: Any, customer_id: int, gateway_name: str) -> Any:
    t, d = s.payment_methods, method_details
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


def _gateway_customer(conn: Any, customer_id: int, gateway_name: str) -> str | None:
    g = gateway_customers
    return conn.execute(
        select(g.c.gateway_customer_id).where(
            g.c.customer_id == customer_id, g.c.gateway == gateway_name
        )
    ).scalar_one_or_none()


def _stored(m: Any) -> StoredPaymentMethod:
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


def _state_row(conn: Any, invoice_id: int) -> Any:
    return conn.execute(
        select(collection_state).where(collection_state.c.invoice_id == invoice_id)
    ).first()


def _upsert_state(conn: Any, invoice_id: int, gateway: str, now: datetime, **values: Any) -> None:
    if _state_row(conn, invoice_id) is None:
        conn.execute(
            insert(collection_state),
            {"invoice_id": invoice_id, "gateway": gateway, "next_retry_at": None,
             "dunning_json": None, "closed": 0, "updated_at": now, **values},
        )  # fmt: skip
    else:
        conn.execute(
            update(collection_state)
            .where(collection_state.c.invoice_id == invoice_id)
            .values(updated_at=now, **values)
        )


def _dump_dunning(st: DunningState) -> str:
    return json.dumps(
        {"invoice_id": st.invoice_id, "customer_id": st.customer_id,
         "started_at": st.started_at.isoformat(), "status": st.status.value,
         "done_days": list(st.done_days)}
    )  # fmt: skip


def _load_dunning(raw: str) -> DunningState:
    d = json.loads(raw)
    return DunningState(
        d["invoice_id"], d["customer_id"], datetime.fromisoformat(d["started_at"]),
        DunningStatus(d["status"]), tuple(d["done_days"]),
    )  # fmt: skip


def _sub_status(conn: Any, sub_id: int) -> str | None:
    return conn.execute(
        select(s.subscriptions.c.status).where(s.subscriptions.c.id == sub_id)
    ).scalar_one_or_none()


def _move_sub(engine: Engine, sub_id: int | None, to: str, now: datetime, reason: str) -> bool:
    if sub_id is None:
        return False
    with engine.connect() as conn:
        current = _sub_status(conn, sub_id)
    if current is None or current == to:
        return False
    try:
        transition_subscription(engine, sub_id, to, at=now, reason=reason)
    except InvalidTransitionError:
        return False  # paused/canceled meanwhile, or the period moved on; nothing to do
    return True


def _open_dunning_on_sub(conn: Any, sub_id: int) -> bool:
    """Another open invoice of this subscription is still failing."""
    cs, inv = collection_state, s.invoices
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


def _record_paid(engine: Engine, inv_id: int, gateway: str, at: datetime, now: datetime) -> bool:
    """Mark the invoice paid exactly once and end its collection; True when it changed."""
    changed = False
    try:
        mark_invoice_paid(engine, inv_id, at=at)
        changed = True
    except InvalidTransitionError:
        pass  # already paid (a re-run, or a late success recorded by someone else)
    with engine.begin() as conn:
        # Dunning keeps its state: the next dunning run records the "recovered" notification.
        _upsert_state(conn, inv_id, gateway, now, next_retry_at=None, closed=1)
        sub_id = conn.execute(
            select(s.invoices.c.subscription_id).where(s.invoices.c.id == inv_id)
        ).scalar_one()
        others = sub_id is not None and _open_dunning_on_sub(conn, sub_id)
    if sub_id is not None and not others:
        with engine.connect() as conn:
            status = _sub_status(conn, sub_id)
        if status in ("past_due", "unpaid"):  # unpaid: restricted by dunning, now paid
            _move_sub(engine, sub_id, "active", now, "payment_recovered")
    return changed


def _apply_outcome(
    engine: Engine,
    store: LedgerAttemptStore,
    charge: InvoiceCharge,
    sub_id: int | None,
    attempt: Attempt,
    now: datetime,
    policy: RetryPolicy,
    mandate: bool,
    report: CollectionReport,
    features: dict[str, Any] | None = None,
) -> None:
    inv_id = int(charge.invoice_id)
    if attempt.status is AttemptStatus.SUCCEEDED:
        if _record_paid(engine, inv_id, store.gateway, attempt.updated_at, now):
            report.paid.append(inv_id)
            report.collected_minor[charge.currency] = (
                report.collected_minor.get(charge.currency, 0) + attempt.amount_minor
            )
        return
    if attempt.status is not AttemptStatus.FAILED:
        report.pending.append(inv_id)  # processing (UPI) or unknown: the janitor resolves it
        with engine.begin() as conn:
            _upsert_state(conn, inv_id, store.gateway, now, next_retry_at=None)
        return
    report.failed.append(inv_id)
    ctx = retry_context(
        charge, store.attempts(charge.invoice_id), store.gateway, mandate=mandate,
        features=features,
    )  # fmt: skip
    decision = policy.next_attempt(ctx) if ctx else None
    next_at = decision.at if decision is not None and decision.retry else None
    if next_at is not None:
        report.retries_scheduled[inv_id] = next_at.isoformat()
    with engine.begin() as conn:
        row = _state_row(conn, inv_id)
        dunning = row.dunning_json if row is not None else None
        if not dunning:
            dunning = _dump_dunning(
                start_dunning(
                    DunningInvoice(charge.invoice_id, str(_ledger_customer(conn, inv_id)),
                                   charge.amount_minor, charge.currency),
                    attempt.updated_at,
                )
            )  # fmt: skip
        _upsert_state(conn, inv_id, store.gateway, now, next_retry_at=next_at,
                      dunning_json=dunning)  # fmt: skip
    with engine.connect() as conn:
        status = None if sub_id is None else _sub_status(conn, sub_id)
    if status in ("active", "trialing"):
        _move_sub(engine, sub_id, "past_due", now, "payment_failed")


def _ledger_customer(conn: Any, inv_id: int) -> int:
    return conn.execute(
        select(s.invoices.c.customer_id).where(s.invoices.c.id == inv_id)
    ).scalar_one()


def _attempt_invoice(
    engine: Engine,
    gateway: Gateway,
    store: LedgerAttemptStore,
    inv: Any,
    now: datetime,
    policy: RetryPolicy,
    report: CollectionReport,
) -> None:
    due = inv.amount_due_minor - inv.amount_paid_minor
    with engine.connect() as conn:
        method = _default_method(conn, inv.customer_id, store.gateway)
        gcus = _gateway_customer(conn, inv.customer_id, store.gateway)
    if method is None:
        report.skipped[inv.id] = "no default payment method"
        return
    if gcus is None:
        report.skipped[inv.id] = f"customer {inv.customer_id} has no {store.gateway} customer"
        return
    try:
        # Limits and currency are ours to enforce; expiry is the issuer's (networks update
        # expired cards), so an expired card is still sent and its decline starts dunning.
        check_charge(replace(_stored(method), exp_month=None, exp_year=None), due, inv.currency,
                     now.date())  # fmt: skip
    except PaymentMethodError as e:
        report.skipped[inv.id] = str(e)  # never sent to the gateway: it would be refused
        return
    charge = InvoiceCharge(
        str(inv.id), gcus, method.gateway_token, due, inv.currency,
        {"paysight_customer_id": str(inv.customer_id)},
    )  # fmt: skip
    try:
        attempt = collect_invoice(store, gateway, charge, now)
    except AlreadyPaid:
        if _record_paid(engine, inv.id, store.gateway, now, now):
            report.paid.append(inv.id)
        return
    except AttemptInFlight:
        report.skipped[inv.id] = "an attempt is unresolved; the janitor will settle it"
        return
    report.charged.append(inv.id)
    mandate = parse_kind(method.kind) in MANDATES
    _apply_outcome(
        engine, store, charge, inv.subscription_id, attempt, now, policy, mandate, report,
        retry_features(method),
    )  # fmt: skip


# -- collection, retries, janitor --------------------------------------------------------------
def collect_open_invoices(
    engine: Engine,
    gateway: Gateway,
    gateway_name: str,
    now: datetime,
    policy: RetryPolicy | None = None,
) -> CollectionReport:
    """First charge of every open, issued invoice with money due and no attempt yet, on the
    customer's default method at `gateway_name`. Re-running never charges an invoice twice."""
    now = _aware(now)
    ensure_payments_tables(engine)
    policy = policy or ExponentialPolicy()
    store = LedgerAttemptStore(engine, gateway_name)
    inv, pa = s.invoices, s.payment_attempts
    with engine.connect() as conn:
        rows = conn.execute(
            select(inv)
            .where(
                inv.c.status == "open",
                inv.c.issued_at <= now,
                inv.c.amount_due_minor > inv.c.amount_paid_minor,
                ~select(pa.c.id).where(pa.c.invoice_id == inv.c.id).exists(),
                ~select(collection_state.c.invoice_id)
                .where(collection_state.c.invoice_id == inv.c.id)
                .exists(),
            )
            .order_by(inv.c.id)
        ).all()
    report = CollectionReport()
    for r in rows:
        _attempt_invoice(engine, gateway, store, r, now, policy, report)
    return report


def run_due_retries(
    engine: Engine, gateway: Gateway, now: datetime, policy: RetryPolicy | None = None
) -> CollectionReport:
    """Retry every failed invoice whose scheduled retry time has come (on the current default
    method, so a replaced card is used)."""
    now = _aware(now)
    ensure_payments_tables(engine)
    policy = policy or ExponentialPolicy()
    store = LedgerAttemptStore(engine, gateway.name)
    inv, cs = s.invoices, collection_state
    with engine.connect() as conn:
        rows = conn.execute(
            select(inv)
            .select_from(inv.join(cs, cs.c.invoice_id == inv.c.id))
            .where(
                cs.c.gateway == gateway.name,
                cs.c.closed == 0,
                cs.c.next_retry_at.is_not(None),
                cs.c.next_retry_at <= now,
            )
            .order_by(cs.c.next_retry_at, inv.c.id)
        ).all()
    report = CollectionReport()
    for r in rows:
        if r.status != "open" or r.amount_due_minor <= r.amount_paid_minor:
            with engine.begin() as conn:
                _upsert_state(conn, r.id, gateway.name, now, next_retry_at=None, closed=1)
            report.skipped[r.id] = f"invoice is {r.status}"
            continue
        with engine.begin() as conn:  # the retry is consumed whatever happens next
            _upsert_state(conn, r.id, gateway.name, now, next_retry_at=None)
        _attempt_invoice(engine, gateway, store, r, now, policy, report)
    return report


def resolve_unknown(
    engine: Engine, gateway: Gateway, now: datetime, policy: RetryPolicy | None = None
) -> CollectionReport:
    """The janitor: ask the gateway about unresolved attempts and apply what it says. Never
    charges."""
    now = _aware(now)
    ensure_payments_tables(engine)
    policy = policy or ExponentialPolicy()
    store = LedgerAttemptStore(engine, gateway.name)
    report = CollectionReport()
    for a in resolve_unknown_attempts(store, gateway, now):
        _apply_attempt(engine, store, a, now, policy, report)
    return report


def _apply_attempt(
    engine: Engine,
    store: LedgerAttemptStore,
    a: Attempt,
    now: datetime,
    policy: RetryPolicy,
    report: CollectionReport,
) -> None:
    with engine.connect() as conn:
        r = conn.execute(select(s.invoices).where(s.invoices.c.id == int(a.invoice_id))).one()
        method = _default_method(conn, r.customer_id, store.gateway)
    charge = InvoiceCharge(
        a.invoice_id, "-", method.gateway_token if method else "-", a.amount_minor, a.currency
    )
    mandate = method is not None and parse_kind(method.kind) in MANDATES
    _apply_outcome(
        engine, store, charge, r.subscription_id, a, now, policy, mandate, report,
        retry_features(method),
    )  # fmt: skip


def apply_attempt_outcome(
    engine: Engine,
    gateway_name: str,
    attempt: Attempt,
    now: datetime,
    policy: RetryPolicy | None = None,
) -> CollectionReport:
    """Apply an attempt that was just finalized out of band (a webhook) to its invoice: paid
    exactly once, or a failure that schedules the retry and starts dunning, or still pending."""
    now = _aware(now)
    ensure_payments_tables(engine)
    report = CollectionReport()
    store = LedgerAttemptStore(engine, gateway_name)
    _apply_attempt(engine, store, attempt, now, policy or ExponentialPolicy(), report)
    return report


# -- dunning -----------------------------------------------------------------------------------
def run_dunning(
    engine: Engine,
    now: datetime,
    config: DunningConfig | None = None,
    *,
    supplier_name: str = "Paysight",
    pay_url: str = "https://pay.paysight.local",
) -> dict[str, Any]:
    """Advance every open dunning process to `now`: record each due notification once, queue
    a mail when the customer has an e-mail, and apply restrict / cancel / mark-unpaid."""
    from billing_jobs.invoicing.mail import ensure_delivery_tables, queue_message

    now = _aware(now)
    ensure_payments_tables(engine)
    ensure_delivery_tables(engine)
    config = config or load_config()
    cs, inv, cus = collection_state, s.invoices, s.customers
    with engine.connect() as conn:
        rows = conn.execute(
            select(cs, inv.c.status.label("inv_status"), inv.c.subscription_id, inv.c.number,
                   inv.c.amount_due_minor, inv.c.amount_paid_minor, inv.c.currency,
                   inv.c.customer_id, cus.c.email, cus.c.name, cus.c.locale)
            .select_from(cs.join(inv, inv.c.id == cs.c.invoice_id)
                         .join(cus, cus.c.id == inv.c.customer_id))
            .where(cs.c.dunning_json.is_not(None)).order_by(cs.c.invoice_id)
        ).all()  # fmt: skip
    out: dict[str, Any] = {"notifications": 0, "mails_queued": 0, "restricted": [],
                           "canceled": [], "unpaid": [], "recovered": []}  # fmt: skip
    for r in rows:
        state = _load_dunning(r.dunning_json)
        if state.status in CLOSED:
            continue
        if r.inv_status in ("void", "uncollectible"):
            # Settled another way (voided, written off): stop dunning without telling anyone.
            with engine.begin() as conn:
                _upsert_state(conn, r.invoice_id, r.gateway, now, next_retry_at=None, closed=1,
                              dunning_json=_dump_dunning(replace(state, status=DunningStatus.CANCELED)))  # fmt: skip
            continue
        due = r.amount_due_minor - r.amount_paid_minor
        dinv = DunningInvoice(str(r.invoice_id), str(r.customer_id), due, r.currency,
                              paid=r.inv_status == "paid")  # fmt: skip
        retry_times = [r.next_retry_at] if r.next_retry_at else []
        res = dunning_actions(state, dinv, now, config, retry_times=retry_times)
        days = max(0, (now - state.started_at).days)
        deliveries: dict[int, int | None] = {}
        for i, note in enumerate(res.notifications):
            deliveries[i] = None
            if r.email and note.kind != "recovered":
                # Queued outside the ledger transaction (SQLite has one writer); the dedupe key
                # makes a re-run after a crash return the same mail instead of a second one.
                deliveries[i] = queue_message(
                    engine, kind="dunning", to=r.email, subject_key="dunning_reminder",
                    context={"customer_name": r.name,
                             "document_number": r.number or str(r.invoice_id),
                             "amount": Money(due, r.currency).format(r.locale or "en_IN"),
                             "days_overdue": days, "pay_url": pay_url,
                             "supplier_name": supplier_name},
                    now=now,
                    dedupe_key=f"dunning:{r.invoice_id}:{note.kind}:{note.due_at.isoformat()}",
                )  # fmt: skip
        with engine.begin() as conn:
            for i, note in enumerate(res.notifications):
                exists = conn.execute(
                    select(dunning_notifications.c.id).where(
                        dunning_notifications.c.invoice_id == r.invoice_id,
                        dunning_notifications.c.kind == note.kind,
                        dunning_notifications.c.due_at == note.due_at,
                    )
                ).first()
                if exists:
                    continue
                conn.execute(
                    insert(dunning_notifications),
                    {"invoice_id": r.invoice_id, "customer_id": r.customer_id, "kind": note.kind,
                     "template_key": note.template_key, "due_at": note.due_at,
                     "next_retry_at": note.next_retry_at, "amount_minor": note.amount_minor,
                     "currency": note.currency, "mail_delivery_id": deliveries[i],
                     "created_at": now},
                )  # fmt: skip
                out["notifications"] += 1
                out["mails_queued"] += deliveries[i] is not None
            closed = 1 if res.state.status in CLOSED else 0
            values: dict[str, Any] = {"dunning_json": _dump_dunning(res.state), "closed": closed}
            if closed:
                values["next_retry_at"] = None
            _upsert_state(conn, r.invoice_id, r.gateway, now, **values)
        _apply_dunning_status(engine, r, state.status, res.state.status, now, out)
    return out


def _apply_dunning_status(
    engine: Engine, r: Any, before: DunningStatus, after: DunningStatus, now: datetime, out: dict
) -> None:
    if after is before:
        return
    sub_id = r.subscription_id
    if after is DunningStatus.RESTRICTED:
        # Access is cut by the subscription leaving past_due for unpaid; a payment restores it.
        _move_sub(engine, sub_id, "unpaid", now, "dunning_restricted")
        out["restricted"].append(r.invoice_id)
    elif after is DunningStatus.UNPAID:
        _move_sub(engine, sub_id, "unpaid", now, "dunning_unpaid")
        out["unpaid"].append(r.invoice_id)
    elif after is DunningStatus.CANCELED:
        if sub_id is not None:
            with suppress(InvalidTransitionError):  # already canceled
                cancel_subscription(engine, sub_id, at=now, credit_unused=False)
        with suppress(InvalidTransitionError):  # already written off
            mark_uncollectible(engine, r.invoice_id, at=now)
        out["canceled"].append(r.invoice_id)
    elif after is DunningStatus.RECOVERED:
        out["recovered"].append(r.invoice_id)


# -- payment methods ---------------------------------------------------------------------------
def _customer(conn: Any, customer_id: int) -> Any:
    row = conn.execute(select(s.customers).where(s.customers.c.id == customer_id)).first()
    if row is None:
        raise NotFoundError(f"customer {customer_id} does not exist")
    return row


def _method_dict(m: Any) -> dict[str, Any]:
    return {
        "id": m.id, "customer_id": m.customer_id, "gateway": m.gateway, "token": m.gateway_token,
        "kind": m.kind, "label": m.label, "is_default": bool(m.is_default),
        "brand": m.brand, "last4": m.last4, "exp_month": m.exp_month, "exp_year": m.exp_year,
        "mandate_ref": m.mandate_ref, "created_at": m.created_at.isoformat(),
    }  # fmt: skip


def _methods_query(customer_id: int) -> Any:
    t, d = s.payment_methods, method_details
    return (
        select(t, d.c.brand, d.c.last4, d.c.exp_month, d.c.exp_year, d.c.max_amount_minor)
        .select_from(t.outerjoin(d, d.c.payment_method_id == t.c.id))
        .where(t.c.customer_id == customer_id, t.c.removed_at.is_(None))
        .order_by(t.c.id)
    )


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
    now = _aware(now)
    ensure_payments_tables(engine)
    with engine.connect() as conn:
        cust = _customer(conn, customer_id)
    data = dict(data)
    data.setdefault("currency", cust.currency)  # a UPI method for a USD customer is refused
    method = validate_payment_method(data, now.date())
    with engine.connect() as conn:
        gcus = _gateway_customer(conn, customer_id, gateway.name)
        existing = conn.execute(
            _methods_query(customer_id).where(s.payment_methods.c.gateway == gateway.name)
        ).all()
    if gcus is None:
        gcus = gateway.create_customer(
            email=cust.email, name=cust.name, metadata={"paysight_customer_id": str(customer_id)}
        ).gateway_customer_id
        with engine.begin() as conn:
            conn.execute(
                insert(gateway_customers),
                {"customer_id": customer_id, "gateway": gateway.name,
                 "gateway_customer_id": gcus, "created_at": now},
            )  # fmt: skip
    pm = gateway.attach_payment_method(gcus, method.token)
    mismatch = _gateway_mismatch(method, pm)
    if mismatch:
        gateway.detach_payment_method(pm.token)
        raise PaymentsError(f"the gateway's payment method does not match the input: {mismatch}")
    if any(m.gateway_token == pm.token for m in existing):
        raise PaymentsError(f"payment method {pm.token} is already on customer {customer_id}")
    default = (not existing) if make_default is None else make_default
    t = s.payment_methods
    label = " ".join(
        x for x in (pm.brand or method.brand or method.kind.value,
                    f"•••• {pm.last4 or method.last4}" if (pm.last4 or method.last4) else None,
                    method.vpa, pm.issuer) if x
    )[:64]  # fmt: skip
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
            conn.execute(method_details.delete().where(method_details.c.payment_method_id == old))
        conn.execute(
            insert(method_details),
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
    cs, inv = collection_state, s.invoices
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
    now = _aware(now)
    ensure_payments_tables(engine)
    if not gateway_customer_id:
        raise PaymentsError("a gateway customer id is required")
    with engine.begin() as conn:
        _customer(conn, customer_id)
        current = _gateway_customer(conn, customer_id, gateway_name)
        if current == gateway_customer_id:
            return False
        if current is not None:
            raise PaymentsError(
                f"customer {customer_id} is already {current} at {gateway_name}, "
                f"not {gateway_customer_id}"
            )
        conn.execute(
            insert(gateway_customers),
            {"customer_id": customer_id, "gateway": gateway_name,
             "gateway_customer_id": gateway_customer_id, "created_at": now},
        )  # fmt: skip
    return True


def list_payment_methods(engine: Engine, customer_id: int) -> list[dict[str, Any]]:
    ensure_payments_tables(engine)
    with engine.connect() as conn:
        _customer(conn, customer_id)
        return [_method_dict(m) for m in conn.execute(_methods_query(customer_id))]


def _owned_method(conn: Any, customer_id: int, method_id: int) -> Any:
    _customer(conn, customer_id)
    m = conn.execute(_methods_query(customer_id).where(s.payment_methods.c.id == method_id)).first()
    if m is None:
        raise NotFoundError(f"customer {customer_id} has no payment method {method_id}")
    return m


def remove_payment_method(
    engine: Engine, gateway: Gateway, customer_id: int, method_id: int, now: datetime
) -> dict[str, Any]:
    """Detach at the gateway and mark removed (the row stays for history)."""
    now = _aware(now)
    ensure_payments_tables(engine)
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
    now = _aware(now)
    ensure_payments_tables(engine)
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


# -- refunds -----------------------------------------------------------------------------------
def create_refund(
    engine: Engine,
    gateway: Gateway,
    invoice_or_payment: int | str,
    amount_minor: int,
    now: datetime,
    *,
    memo: str | None = None,
) -> dict[str, Any]:
    """Refund part or all of an invoice's captured payment (by invoice id or gateway payment id)
    and issue the matching credit note. Refuses more than is left; changes nothing then."""
    now = _aware(now)
    ensure_payments_tables(engine)
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise PaymentsError(f"amount_minor must be an integer, got {amount_minor!r}")
    pa = s.payment_attempts
    cond = (
        pa.c.invoice_id == int(invoice_or_payment)
        if str(invoice_or_payment).isdigit()
        else pa.c.gateway_payment_id == str(invoice_or_payment)
    )
    with engine.connect() as conn:
        attempt = conn.execute(select(pa).where(cond, pa.c.status == "succeeded")).first()
        if attempt is None:
            raise NotFoundError(f"no captured payment for {invoice_or_payment!r}")
        if attempt.gateway != gateway.name:
            raise PaymentsError(f"payment was captured by {attempt.gateway}, not {gateway.name}")
        refunded = conn.execute(
            select(func.coalesce(func.sum(refunds.c.amount_minor), 0)).where(
                refunds.c.gateway_payment_id == attempt.gateway_payment_id
            )
        ).scalar_one()
        n_prior = conn.execute(
            select(func.count()).where(refunds.c.gateway_payment_id == attempt.gateway_payment_id)
        ).scalar_one()
        inv = conn.execute(select(s.invoices).where(s.invoices.c.id == attempt.invoice_id)).one()
    check_refund(attempt.amount_minor, int(refunded), amount_minor)  # raises; nothing changed
    key = f"paysight-refund-{attempt.gateway_payment_id}-{n_prior + 1}"
    with engine.begin() as conn:
        # The credit note and our record commit only if the gateway refunded: a gateway error
        # rolls both back, and the deterministic key makes a re-run return the same refund.
        note = _refund_credit_note(conn, inv, amount_minor, int(refunded), now, memo)
        refund = gateway.refund(attempt.gateway_payment_id, amount_minor, idempotency_key=key)
        conn.execute(
            insert(refunds),
            {"invoice_id": inv.id, "gateway": gateway.name,
             "gateway_payment_id": attempt.gateway_payment_id,
             "gateway_refund_id": refund.gateway_refund_id, "amount_minor": amount_minor,
             "currency": attempt.currency, "credit_note_id": note["id"], "created_at": now},
        )  # fmt: skip
    return {
        "invoice_id": inv.id, "gateway_payment_id": attempt.gateway_payment_id,
        "gateway_refund_id": refund.gateway_refund_id, "amount_minor": amount_minor,
        "currency": attempt.currency, "status": refund.status,
        "credit_note": {"id": note["id"], "number": note["number"],
                        "total_minor": note["total_minor"]},
        "refundable_left_minor": attempt.amount_minor - int(refunded) - amount_minor,
    }  # fmt: skip


def _refund_credit_note(
    conn: Any, inv: Any, amount_minor: int, refunded_before: int, now: datetime, memo: str | None
) -> dict[str, Any]:
    # Credit notes take taxable value; the refund is gross (tax included), so scale it back.
    # Scaling the running total (not each refund) keeps partial refunds summing to the invoice.
    def taxable_of(gross: int) -> int:
        if not inv.total_minor:
            return gross
        return round_fraction(Fraction(gross * inv.taxable_minor, inv.total_minor))

    taxable: int | None = taxable_of(refunded_before + amount_minor) - taxable_of(refunded_before)
    current = conn.execute(select(s.invoices).where(s.invoices.c.id == inv.id)).one()
    if refunded_before + amount_minor >= current.total_minor:
        taxable = None  # the last refund credits whatever is left, so rounding cannot strand 1
    else:
        taxable = max(taxable or 0, 1)
    return create_credit_note(conn, inv.id, at=now, amount_minor=taxable,
                              reason="refund", destination="refund", memo=memo)  # fmt: skip


def record_gateway_refund(
    engine: Engine,
    gateway_name: str,
    gateway_payment_id: str,
    gateway_refund_id: str,
    amount_minor: int,
    currency: str,
    now: datetime,
    *,
    memo: str | None = None,
) -> dict[str, Any]:
    """Record a refund the gateway reports (made here or in its dashboard) with its credit note.

    Returns ``{"status": "recorded" | "duplicate", ...}``. Raises `NotFoundError` when the
    payment is not captured in the ledger (yet), `PaymentsError` on a currency mismatch and
    `RefundExceedsCaptured` when the total refunded would exceed the capture; nothing changes
    then."""
    now = _aware(now)
    ensure_payments_tables(engine)
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise PaymentsError(f"amount_minor must be an integer, got {amount_minor!r}")
    pa = s.payment_attempts
    with engine.begin() as conn:
        if conn.execute(
            select(refunds.c.id).where(refunds.c.gateway_refund_id == gateway_refund_id)
        ).first():
            return {"status": "duplicate", "gateway_refund_id": gateway_refund_id}
        attempt = conn.execute(
            select(pa).where(pa.c.gateway == gateway_name,
                             pa.c.gateway_payment_id == gateway_payment_id,
                             pa.c.status == "succeeded")
        ).first()  # fmt: skip
        if attempt is None:
            raise NotFoundError(f"no captured {gateway_name} payment {gateway_payment_id!r}")
        if currency.upper() != attempt.currency:
            raise PaymentsError(
                f"refund {gateway_refund_id} is in {currency}, payment {gateway_payment_id} "
                f"in {attempt.currency}"
            )
        refunded = conn.execute(
            select(func.coalesce(func.sum(refunds.c.amount_minor), 0)).where(
                refunds.c.gateway_payment_id == gateway_payment_id
            )
        ).scalar_one()
        left = check_refund(attempt.amount_minor, int(refunded), amount_minor)
        inv = conn.execute(select(s.invoices).where(s.invoices.c.id == attempt.invoice_id)).one()
        note = _refund_credit_note(conn, inv, amount_minor, int(refunded), now, memo)
        conn.execute(
            insert(refunds),
            {"invoice_id": inv.id, "gateway": gateway_name,
             "gateway_payment_id": gateway_payment_id, "gateway_refund_id": gateway_refund_id,
             "amount_minor": amount_minor, "currency": attempt.currency,
             "credit_note_id": note["id"], "created_at": now},
        )  # fmt: skip
    return {"status": "recorded", "invoice_id": inv.id, "gateway_refund_id": gateway_refund_id,
            "amount_minor": amount_minor, "credit_note_id": note["id"],
            "refundable_left_minor": left}  # fmt: skip
