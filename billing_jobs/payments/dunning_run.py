"""The dunning run on the ledger: advance every open dunning process, record and mail each
notification once, and restrict, cancel or mark unpaid as the configured machine says.

`run_dunning` reads the open processes from the ledger; `advance_dunning` is the run itself on
processes a caller already holds (the simulator keeps them in memory): both decide with
`dunning_step` and write with the same code, many rows per statement, in one transaction per
batch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Engine, select

from billing_jobs.catalog.snapshot import CatalogSnapshot
from billing_jobs.errors import InvalidTransitionError
from billing_jobs.invoicing.mail import QueuedMail, queue_messages
from billing_jobs.invoicing.mail.outbox import OutboxError, check_address
from billing_jobs.ledger import schema as s
from billing_jobs.ledger.rawsql import from_db, is_sqlite, ph, sql_insert, sql_many, sql_rows, to_db
from billing_jobs.ledger.schema import payments_collection_state
from billing_jobs.money import Money
from billing_jobs.payments.batch import mark_invoices_uncollectible
from billing_jobs.payments.dunning import (
    CLOSED,
    DunningConfig,
    DunningError,
    DunningInvoice,
    DunningState,
    DunningStatus,
    Notification,
    dunning_actions,
    load_config,
)
from billing_jobs.payments.state import aware, dump_dunning, load_dunning
from billing_jobs.subscriptions.batch import transition_subscriptions
from billing_jobs.subscriptions.service import cancel_subscription

BATCH = 500  # processes per transaction in run_dunning
CHUNK = 500  # ids per IN (...) list


@dataclass(frozen=True)
class DunningCase:
    """One invoice's dunning process as a dunning run sees it. `stored`: the ledger's
    collection-state row already holds `state` (else the run writes it)."""

    invoice_id: int
    customer_id: int
    subscription_id: int | None
    gateway: str
    state: DunningState
    invoice_status: str  # open, paid, void, uncollectible
    amount_due_minor: int  # still due
    currency: str
    next_retry_at: datetime | None = None
    number: str | None = None
    email: str | None = None
    name: str = ""
    locale: str | None = None
    stored: bool = True


class Effect(StrEnum):
    """What a step does beyond notifying: to the subscription, the invoice, or nothing."""

    RESTRICT = "restrict"  # the subscription leaves past_due for unpaid; a payment restores it
    MARK_UNPAID = "mark_unpaid"  # the subscription is unpaid and dunning ends
    CANCEL = "cancel"  # the subscription is canceled (no credit) and the invoice written off
    RECOVERED = "recovered"  # paid: dunning ends
    CLOSE = "close"  # voided or written off elsewhere: dunning ends without a word


_EFFECTS = {
    DunningStatus.RESTRICTED: Effect.RESTRICT,
    DunningStatus.UNPAID: Effect.MARK_UNPAID,
    DunningStatus.CANCELED: Effect.CANCEL,
    DunningStatus.RECOVERED: Effect.RECOVERED,
}


@dataclass(frozen=True)
class DunningStep:
    """What the run decided for one process: its new state, the notifications due, the effect."""

    case: DunningCase
    state: DunningState
    notifications: tuple[Notification, ...]
    effect: Effect | None

    @property
    def closed(self) -> bool:
        return self.state.status in CLOSED


@dataclass
class DunningReport:
    """What a run did, by invoice id (`to_dict` is the CLI's and the job's JSON)."""

    notifications: int = 0
    mails_queued: int = 0
    restricted: list[int] = field(default_factory=list)
    canceled: list[int] = field(default_factory=list)
    unpaid: list[int] = field(default_factory=list)
    recovered: list[int] = field(default_factory=list)
    unmailed: dict[int, str] = field(default_factory=dict)  # recorded, but the address is bad

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "notifications": self.notifications,
            "mails_queued": self.mails_queued,
            "restricted": self.restricted,
            "canceled": self.canceled,
            "unpaid": self.unpaid,
            "recovered": self.recovered,
        }
        if self.unmailed:
            out["unmailed"] = {str(k): v for k, v in self.unmailed.items()}
        return out

    def add(self, other: DunningReport) -> None:
        self.notifications += other.notifications
        self.mails_queued += other.mails_queued
        for name in ("restricted", "canceled", "unpaid", "recovered"):
            getattr(self, name).extend(getattr(other, name))
        self.unmailed.update(other.unmailed)


def dunning_step(case: DunningCase, now: datetime, config: DunningConfig) -> DunningStep | None:
    """The next step of one process at `now` (None once it has ended). Pure."""
    if case.state.status in CLOSED:
        return None
    if case.invoice_status in ("void", "uncollectible"):
        # Settled another way (voided, written off): stop dunning without telling anyone.
        ended = replace(case.state, status=DunningStatus.CANCELED)
        return DunningStep(case, ended, (), Effect.CLOSE)
    invoice = DunningInvoice(str(case.invoice_id), str(case.customer_id), case.amount_due_minor,
                             case.currency, paid=case.invoice_status == "paid")  # fmt: skip
    retry_times = [case.next_retry_at] if case.next_retry_at else []
    res = dunning_actions(case.state, invoice, now, config, retry_times=retry_times)
    effect = None if res.state.status is case.state.status else _EFFECTS.get(res.state.status)
    return DunningStep(case, res.state, res.notifications, effect)


def advance_dunning(
    conn: Connection,
    cases: Sequence[DunningCase],
    now: datetime,
    config: DunningConfig | None = None,
    *,
    catalog: CatalogSnapshot | None = None,
    supplier_name: str = "Paysight",
    pay_url: str = "https://pay.paysight.local",
) -> tuple[list[DunningStep], DunningReport]:
    """The dunning run on `cases`, in the caller's transaction: record each due notification
    once and queue its mail (when the customer has an e-mail), save the new dunning states, then
    apply restrict / mark unpaid / cancel in invoice order. Returns the steps taken and what
    was done. Re-running with the returned states does nothing more."""
    now = aware(now)
    config = config or load_config()
    ids = [c.invoice_id for c in cases]
    if len(set(ids)) != len(ids):
        twice = sorted({i for i in ids if ids.count(i) > 1})
        raise DunningError(f"invoices {twice} appear more than once among the dunning cases")
    steps = [
        step
        for case in sorted(cases, key=lambda c: c.invoice_id)
        if (step := dunning_step(case, now, config)) is not None
    ]
    report = DunningReport()
    _record_notifications(conn, steps, now, supplier_name, pay_url, report)
    _save_states(conn, steps, now)
    for step in steps:
        _apply_effect(conn, step, now, catalog, report)
    return steps, report


def run_dunning(
    engine: Engine,
    now: datetime,
    config: DunningConfig | None = None,
    *,
    supplier_name: str = "Paysight",
    pay_url: str = "https://pay.paysight.local",
) -> dict[str, Any]:
    """Advance every open dunning process in the ledger to `now` (`advance_dunning`, a batch
    of processes per transaction); the report as JSON-ready dict."""
    now = aware(now)
    config = config or load_config()
    with engine.connect() as conn:
        cases = open_dunning_cases(conn)
    report = DunningReport()
    for i in range(0, len(cases), BATCH):
        with engine.begin() as conn:
            _, done = advance_dunning(conn, cases[i : i + BATCH], now, config,
                                      supplier_name=supplier_name, pay_url=pay_url)  # fmt: skip
        report.add(done)
    return report.to_dict()


def open_dunning_cases(conn: Connection) -> list[DunningCase]:
    """Every dunning process in the ledger that has not ended, in invoice order."""
    cs, inv, cus = payments_collection_state, s.invoices, s.customers
    rows = conn.execute(
        select(cs, inv.c.status.label("inv_status"), inv.c.subscription_id, inv.c.number,
               inv.c.amount_due_minor, inv.c.amount_paid_minor, inv.c.currency,
               inv.c.customer_id, cus.c.email, cus.c.name, cus.c.locale)
        .select_from(cs.join(inv, inv.c.id == cs.c.invoice_id)
                     .join(cus, cus.c.id == inv.c.customer_id))
        .where(cs.c.dunning_json.is_not(None)).order_by(cs.c.invoice_id)
    ).all()  # fmt: skip
    out = []
    for r in rows:
        state = load_dunning(r.dunning_json)
        if state.status in CLOSED:
            continue
        out.append(
            DunningCase(
                r.invoice_id, r.customer_id, r.subscription_id, r.gateway, state, r.inv_status,
                r.amount_due_minor - r.amount_paid_minor, r.currency, r.next_retry_at,
                r.number, r.email, r.name, r.locale,
            )
        )  # fmt: skip
    return out


def _in(conn: Connection, n: int) -> str:
    return ", ".join([ph(conn)] * n)


def _recorded(conn: Connection, invoice_ids: Sequence[int]) -> set[tuple[int, str, datetime]]:
    """(invoice id, kind, due at) of the notifications already recorded for these invoices."""
    ids = sorted(set(invoice_ids))
    out: set[tuple[int, str, datetime]] = set()
    for i in range(0, len(ids), CHUNK):
        part = ids[i : i + CHUNK]
        rows = sql_rows(
            conn,
            "SELECT invoice_id, kind, due_at FROM payments_dunning_notifications "
            f"WHERE invoice_id IN ({_in(conn, len(part))})",
            part,
        )
        out.update((inv, kind, from_db(due)) for inv, kind, due in rows)  # type: ignore[misc]
    return out


@lru_cache(maxsize=4096)
def _amount_text(minor: int, currency: str, locale: str) -> str:
    """Formatting money is the slow part of a dunning mail; amounts repeat a lot."""
    return Money(minor, currency).format(locale)


def _record_notifications(
    conn: Connection,
    steps: Sequence[DunningStep],
    now: datetime,
    supplier_name: str,
    pay_url: str,
    report: DunningReport,
) -> None:
    """Each notification once (a re-run finds it and skips it), with its mail queued."""
    noted = [st for st in steps if st.notifications]
    if not noted:
        return
    seen = _recorded(conn, [st.case.invoice_id for st in noted])
    fresh: list[tuple[DunningStep, Notification]] = []
    for st in noted:
        for note in st.notifications:
            key = (st.case.invoice_id, note.kind, note.due_at)
            if key not in seen:
                seen.add(key)
                fresh.append((st, note))
    mails: list[QueuedMail] = []
    mailed: list[int] = []  # index into fresh of each mail
    for i, (st, note) in enumerate(fresh):
        c = st.case
        if not c.email or note.kind == "recovered":
            continue
        try:
            to = check_address(c.email)
        except OutboxError as e:
            report.unmailed[c.invoice_id] = str(e)
            continue
        amount = _amount_text(c.amount_due_minor, c.currency, c.locale or "en_IN")
        mails.append(QueuedMail(
            kind="dunning", to=to, subject_key="dunning_reminder",
            context={"customer_name": c.name, "document_number": c.number or str(c.invoice_id),
                     "amount": amount, "days_overdue": max(0, (now - c.state.started_at).days),
                     "pay_url": pay_url, "supplier_name": supplier_name},
            dedupe_key=f"dunning:{c.invoice_id}:{note.kind}:{note.due_at.isoformat()}",
        ))  # fmt: skip
        mailed.append(i)
    delivery: dict[int, int] = dict(zip(mailed, queue_messages(conn, mails, now=now), strict=True))
    sq = is_sqlite(conn)
    sql_insert(
        conn, "payments_dunning_notifications",
        ("invoice_id", "customer_id", "kind", "template_key", "due_at", "next_retry_at",
         "amount_minor", "currency", "mail_delivery_id", "created_at"),
        [(st.case.invoice_id, st.case.customer_id, note.kind, note.template_key,
          to_db(sq, note.due_at), to_db(sq, note.next_retry_at), note.amount_minor,
          note.currency, delivery.get(i), to_db(sq, now))
         for i, (st, note) in enumerate(fresh)],
    )  # fmt: skip
    report.notifications += len(fresh)
    report.mails_queued += len(delivery)


def _save_states(conn: Connection, steps: Sequence[DunningStep], now: datetime) -> None:
    """The collection-state row of every process whose state changed (or is not stored yet);
    an ended process has no retry left."""
    changed = [st for st in steps if st.state != st.case.state or not st.case.stored]
    if not changed:
        return
    sq, p = is_sqlite(conn), ph(conn)
    unknown = sorted(st.case.invoice_id for st in changed if not st.case.stored)
    present: set[int] = set()
    for i in range(0, len(unknown), CHUNK):
        part = unknown[i : i + CHUNK]
        present.update(
            r[0]
            for r in sql_rows(
                conn,
                "SELECT invoice_id FROM payments_collection_state "
                f"WHERE invoice_id IN ({_in(conn, len(part))})",
                part,
            )
        )
    stamp = to_db(sq, now)

    def values(st: DunningStep) -> tuple[Any, ...]:
        retry = None if st.closed else to_db(sq, st.case.next_retry_at)
        return (dump_dunning(st.state), 1 if st.closed else 0, retry, stamp)

    update = [st for st in changed if st.case.stored or st.case.invoice_id in present]
    sql_many(
        conn,
        f"UPDATE payments_collection_state SET dunning_json = {p}, closed = {p}, "
        f"next_retry_at = {p}, updated_at = {p} WHERE invoice_id = {p}",
        [(*values(st), st.case.invoice_id) for st in update],
    )
    sql_insert(
        conn, "payments_collection_state",
        ("invoice_id", "gateway", "dunning_json", "closed", "next_retry_at", "updated_at"),
        [(st.case.invoice_id, st.case.gateway, *values(st)) for st in changed
         if not (st.case.stored or st.case.invoice_id in present)],
    )  # fmt: skip


def _apply_effect(
    conn: Connection,
    step: DunningStep,
    now: datetime,
    catalog: CatalogSnapshot | None,
    report: DunningReport,
) -> None:
    inv_id, sub_id = step.case.invoice_id, step.case.subscription_id
    if step.effect is Effect.RESTRICT:
        # Access is cut by the subscription leaving past_due for unpaid; a payment restores it.
        _move_subscription(conn, sub_id, "unpaid", now, "dunning_restricted")
        report.restricted.append(inv_id)
    elif step.effect is Effect.MARK_UNPAID:
        _move_subscription(conn, sub_id, "unpaid", now, "dunning_unpaid")
        report.unpaid.append(inv_id)
    elif step.effect is Effect.CANCEL:
        if sub_id is not None:
            try:
                with conn.begin_nested():
                    cancel_subscription(conn, sub_id, at=now, credit_unused=False, catalog=catalog)
            except InvalidTransitionError:
                pass  # already canceled
        mark_invoices_uncollectible(conn, [(inv_id, now)])  # False: already written off
        report.canceled.append(inv_id)
    elif step.effect is Effect.RECOVERED:
        report.recovered.append(inv_id)


def _move_subscription(
    conn: Connection, sub_id: int | None, to: str, now: datetime, reason: str
) -> bool:
    """Move the subscription unless it is gone, already there, or the state machine refuses
    (paused or canceled meanwhile)."""
    if sub_id is None:
        return False
    current = conn.execute(
        select(s.subscriptions.c.status).where(s.subscriptions.c.id == sub_id)
    ).scalar_one_or_none()
    if current is None or current == to:
        return False
    return transition_subscriptions(conn, [(sub_id, to, now, reason)])[0]
