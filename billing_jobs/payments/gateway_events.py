"""Applying gateway events (webhooks, Stripe event shape) to the ledger: late payment outcomes,
refunds and payments_disputes. Idempotent by (gateway, event id), safe out of order; events for payments
the ledger does not know yet are kept as `unmatched` and retried on later runs, with growing
gaps, until `event_quarantine` moves them out of the queue.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Engine,
    func,
    insert,
    or_,
    select,
    update,
)

from billing_jobs.errors import BillingError, NotFoundError, ValidationError
from billing_jobs.ledger import schema as s
from billing_jobs.ledger.schema import (
    payments_gateway_events,
    payments_landing_cursors,
)
from billing_jobs.payments.attempt_store import LedgerAttemptStore
from billing_jobs.payments.charging import UNRESOLVED, Attempt, AttemptStatus, CollectionError
from billing_jobs.payments.disputes import apply_dispute
from billing_jobs.payments.event_parsing import (
    DISPUTE_TYPES,
    PAYMENT_TYPES,
    REFUND_TYPES,
    STRIPE_SHAPED,
    EventStatus,
    IncomingEvent,
    MalformedEvent,
    currency_field,
    minor_field,
    parse_event,
    payment_id_of,
    text_field,
)
from billing_jobs.payments.event_quarantine import (
    UNMATCHED_MAX_TRIES,
    quarantine,
    release,
    retry_due,
)
from billing_jobs.payments.gateway import IDEMPOTENCY_METADATA_KEY, PaymentResult, PaymentStatus
from billing_jobs.payments.method_rules import PaymentMethodError
from billing_jobs.payments.outcomes import finish_attempt, settle_success
from billing_jobs.payments.refunds import record_gateway_refund
from billing_jobs.payments.retries import RetryPolicy
from billing_jobs.payments.state import CollectionReport, PaymentsError


@dataclass
class ApplyReport:
    """What one run did. `notes` are the log lines (ignored late events, rejections)."""

    seen: int = 0
    duplicates: int = 0
    applied: int = 0
    ignored: int = 0
    skipped: int = 0
    unmatched: int = 0  # still waiting for their payment after this run (all runs)
    invalid: int = 0
    rejected: int = 0
    rematched: int = 0  # unmatched events (earlier or in this run) settled by this run
    quarantined: int = 0  # unmatched past their tries, moved to quarantine by this run
    paid: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def count(self, status: EventStatus) -> None:
        setattr(self, status.value, getattr(self, status.value) + 1)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Outcome:
    status: EventStatus
    detail: str
    payment_id: str | None = None
    noteworthy: bool = False  # an ignored event an operator should hear of (a late failure)


# -- applying --------------------------------------------------------------------------------
def _find_attempt(engine: Engine, gateway: str, pid: str, key: str | None) -> Attempt | None:
    pa = s.payment_attempts
    match = pa.c.gateway_payment_id == pid
    if key:  # a timed-out attempt never learned the payment id, only its idempotency key
        match = or_(match, pa.c.idempotency_key == key)
    with engine.connect() as conn:
        row = conn.execute(
            select(pa).where(pa.c.gateway == gateway, match).order_by(pa.c.id.desc())
        ).first()
    return LedgerAttemptStore._attempt(row) if row is not None else None


def _apply_payment(
    engine: Engine,
    ev: IncomingEvent,
    obj: Mapping[str, Any],
    at: datetime,
    now: datetime,
    policy: RetryPolicy | None,
    report: ApplyReport,
) -> _Outcome:
    status = PAYMENT_TYPES[ev.event_type]
    pid = payment_id_of(obj)
    amount = minor_field(obj, "amount")
    currency = currency_field(obj)
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    key = meta.get(IDEMPOTENCY_METADATA_KEY) if isinstance(meta, dict) else None
    error = obj.get("last_payment_error") if isinstance(obj.get("last_payment_error"), dict) else {}
    decline = obj.get("decline_code") or error.get("decline_code") or error.get("code")
    decline = decline or obj.get("failure_code")
    if status is PaymentStatus.FAILED and not decline:
        decline = "generic_decline"
    attempt = _find_attempt(engine, ev.source, pid, key if isinstance(key, str) else None)
    if attempt is None:
        return _Outcome(EventStatus.UNMATCHED, f"no ledger attempt for payment {pid}", pid)
    if amount != attempt.amount_minor or (currency and currency != attempt.currency):
        return _Outcome(
            EventStatus.REJECTED,
            f"payment {pid} is {amount} {currency} at the gateway, "
            f"{attempt.amount_minor} {attempt.currency} in the ledger",
            pid,
        )
    result = PaymentResult(
        status, pid, attempt.amount_minor, attempt.currency,
        decline_code=None if status is PaymentStatus.SUCCEEDED else decline,
        idempotency_key=attempt.idempotency_key,
    )  # fmt: skip
    if attempt.status not in UNRESOLVED:
        return _apply_to_resolved(engine, ev, attempt, status, result, pid, at, now, policy, report)
    if status is PaymentStatus.PENDING and attempt.status is AttemptStatus.PROCESSING:
        return _Outcome(EventStatus.IGNORED, "still processing", pid)
    outcome = CollectionReport()
    final = finish_attempt(engine, ev.source, attempt.attempt_id, result, now, outcome, policy,
                           at=at)  # fmt: skip
    report.paid.extend(outcome.paid)
    detail = f"attempt {final.attempt_id} of invoice {final.invoice_id} is {final.status.value}"
    if outcome.retries_scheduled:
        detail += f"; retry at {next(iter(outcome.retries_scheduled.values()))}"
    return _Outcome(EventStatus.APPLIED, detail, pid)


def _apply_to_resolved(
    engine: Engine,
    ev: IncomingEvent,
    attempt: Any,
    status: PaymentStatus,
    result: PaymentResult,
    pid: str,
    at: datetime,
    now: datetime,
    policy: RetryPolicy | None,
    report: ApplyReport,
) -> _Outcome:
    """A payment event for an attempt the ledger has already resolved."""
    if attempt.status is AttemptStatus.SUCCEEDED and status is not PaymentStatus.SUCCEEDED:
        return _Outcome(
            EventStatus.IGNORED,
            f"{ev.event_type} after success of invoice {attempt.invoice_id}: ignored",
            pid,
            noteworthy=True,
        )
    if attempt.status is AttemptStatus.SUCCEEDED:
        # The attempt is final, but its invoice may still be open (left so by a crash of
        # an older version): the gateway's success marks it paid.
        outcome = CollectionReport()
        settle_success(engine, ev.source, int(attempt.invoice_id), now, outcome)
        if outcome.paid:
            report.paid.extend(outcome.paid)
            return _Outcome(EventStatus.APPLIED, f"invoice {attempt.invoice_id} marked paid", pid)
        return _Outcome(EventStatus.IGNORED, "attempt already succeeded", pid)
    if status is PaymentStatus.SUCCEEDED:
        # Money was captured for an attempt the ledger closed as failed. A failure we only
        # guessed (the gateway had no record of a timed-out request) yields to the gateway
        # when no later attempt was made; anything else is for a person, never a re-pay.
        outcome = CollectionReport()
        final = finish_attempt(engine, ev.source, attempt.attempt_id, result, now, outcome,
                               policy, at=at)  # fmt: skip
        if final.status is AttemptStatus.SUCCEEDED:
            report.paid.extend(outcome.paid)
            return _Outcome(
                EventStatus.APPLIED,
                f"attempt {final.attempt_id} of invoice {final.invoice_id} is succeeded "
                "(the gateway had captured it)",
                pid,
            )
        return _Outcome(
            EventStatus.REJECTED,
            f"gateway reports payment {pid} succeeded but attempt {attempt.attempt_id} of "
            f"invoice {attempt.invoice_id} is {attempt.status.value}: investigate",
            pid,
        )
    return _Outcome(EventStatus.IGNORED, f"attempt already {attempt.status.value}", pid)


def _refund_objects(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    if obj.get("object") == "charge":
        listed = obj.get("refunds")
        if listed is None:
            # Newer Stripe API versions do not embed refunds in the charge; each refund also
            # comes as its own refund.* event, which is what gets applied.
            return []
        items = listed.get("data") if isinstance(listed, dict) else None
        if not isinstance(items, list) or not all(isinstance(r, dict) for r in items):
            raise MalformedEvent("charge.refunds must be a list object with data")
        pid = payment_id_of(obj)
        return [{"payment_intent": pid, **r} for r in items]
    return [obj]


def _apply_refunds(
    engine: Engine, ev: IncomingEvent, obj: Mapping[str, Any], at: datetime
) -> _Outcome:
    recorded, notes, pid = 0, [], None
    for r in _refund_objects(obj):
        pid = payment_id_of(r)
        rid = str(text_field(r, "id"))
        amount = minor_field(r, "amount")
        assert amount is not None
        currency = currency_field(r)
        if r.get("status") in ("failed", "canceled", "pending"):
            notes.append(f"refund {rid} is {r.get('status')}: not recorded")
            continue
        attempt = _find_attempt(engine, ev.source, pid, None)
        if attempt is None or attempt.status in UNRESOLVED:
            # A refund can overtake the success it refunds (out-of-order delivery).
            return _Outcome(EventStatus.UNMATCHED, f"payment {pid} is not captured yet", pid)
        if attempt.status is not AttemptStatus.SUCCEEDED:
            return _Outcome(
                EventStatus.REJECTED, f"refund {rid} of payment {pid}, which failed", pid
            )
        try:
            out = record_gateway_refund(
                engine, ev.source, pid, rid, amount, currency or attempt.currency, at,
                memo=f"gateway refund {rid}",
            )  # fmt: skip
        except (PaymentMethodError, ValidationError) as e:
            # Above the capture, another currency, or nothing left to credit on the invoice:
            # recorded as rejected with the reason, for a person to reconcile.
            return _Outcome(EventStatus.REJECTED, f"refund {rid}: {e}", pid)
        if out["status"] == "recorded":
            recorded += 1
    if recorded:
        return _Outcome(EventStatus.APPLIED, f"{recorded} refund(s) recorded", pid)
    return _Outcome(EventStatus.IGNORED, "; ".join(notes) or "refund(s) already recorded", pid)


def _apply_one(
    engine: Engine, ev: IncomingEvent, now: datetime, policy: RetryPolicy | None, r: ApplyReport
) -> tuple[_Outcome, datetime | None]:
    if not ev.signature_verified:
        return _Outcome(EventStatus.INVALID, "signature was not verified"), None
    if ev.source not in STRIPE_SHAPED:
        return _Outcome(EventStatus.SKIPPED, f"{ev.source} events are not applied yet"), None
    try:
        _, obj, at = parse_event(ev)
        if ev.event_type in PAYMENT_TYPES:
            return _apply_payment(engine, ev, obj, at, now, policy, r), at
        if ev.event_type in REFUND_TYPES:
            return _apply_refunds(engine, ev, obj, at), at
        if ev.event_type in DISPUTE_TYPES:
            status, detail = apply_dispute(
                engine, ev, obj, at, now, lambda pid: _find_attempt(engine, ev.source, pid, None)
            )
            return _Outcome(status, detail, payment_id_of(obj)), at
        return _Outcome(EventStatus.SKIPPED, f"event type {ev.event_type} is not applied"), at
    except MalformedEvent as e:
        return _Outcome(EventStatus.INVALID, str(e)), None
    except NotFoundError as e:
        return _Outcome(EventStatus.UNMATCHED, str(e)), None
    except (BillingError, CollectionError, PaymentMethodError) as e:
        # The ledger refused (e.g. an invalid transition): recorded with the reason so one bad
        # event never blocks the ones behind it. Store outages still fail the run (retried).
        return _Outcome(EventStatus.REJECTED, f"{type(e).__name__}: {e}"), None


def _record(
    engine: Engine, ev: IncomingEvent, out: _Outcome, at: datetime | None, now: datetime
) -> None:
    keep = out.status in (EventStatus.UNMATCHED, EventStatus.INVALID)
    g = payments_gateway_events
    with engine.begin() as conn:
        row = conn.execute(
            select(g.c.tries).where(g.c.gateway == ev.source, g.c.event_id == ev.event_id)
        ).first()
        values = {"status": out.status.value, "detail": out.detail[:2000],
                  "gateway_payment_id": out.payment_id, "event_created_at": at,
                  "body": ev.body if keep else None, "updated_at": now}  # fmt: skip
        if row is None:
            conn.execute(
                insert(g),
                {"gateway": ev.source, "event_id": ev.event_id, "event_type": ev.event_type,
                 "tries": 1, "first_seen_at": now, **values},
            )  # fmt: skip
        else:
            conn.execute(
                update(g)
                .where(g.c.gateway == ev.source, g.c.event_id == ev.event_id)
                .values(tries=row.tries + 1, **values)
            )


def _note(report: ApplyReport, ev: IncomingEvent, out: _Outcome) -> None:
    if out.noteworthy or out.status in (EventStatus.REJECTED, EventStatus.INVALID):
        report.notes.append(
            f"{ev.source} event {ev.event_id} ({ev.event_type}) {out.status.value}: {out.detail}"
        )


def apply_gateway_events(
    engine: Engine,
    events: Iterable[IncomingEvent],
    now: datetime,
    policy: RetryPolicy | None = None,
    max_tries: int = UNMATCHED_MAX_TRIES,
) -> ApplyReport:
    """Apply `events` in order, each at most once, then retry the events still unmatched (a
    refund or dispute that arrived before the payment it is about): those of this run at once,
    older ones when their retry is due; one unmatched after `max_tries` tries is quarantined."""
    if now.tzinfo is None:
        raise PaymentsError("times must be timezone-aware")
    report = ApplyReport()
    g = payments_gateway_events
    fresh: set[tuple[str, str]] = set()
    for ev in events:
        report.seen += 1
        with engine.connect() as conn:
            prior = conn.execute(
                select(g.c.status).where(g.c.gateway == ev.source, g.c.event_id == ev.event_id)
            ).scalar_one_or_none()
        if prior is not None:
            report.duplicates += 1  # applied before, or unmatched and retried below
            continue
        out, at = _apply_one(engine, ev, now, policy, report)
        _record(engine, ev, out, at, now)
        if out.status is EventStatus.UNMATCHED:
            fresh.add((ev.source, ev.event_id))
        else:
            report.count(out.status)
        _note(report, ev, out)
    _retry_unmatched(engine, now, policy, report, fresh, max_tries)
    with engine.connect() as conn:
        report.unmatched = conn.execute(
            select(func.count()).where(g.c.status == EventStatus.UNMATCHED.value)
        ).scalar_one()
    return report


def _retry_unmatched(
    engine: Engine,
    now: datetime,
    policy: RetryPolicy | None,
    report: ApplyReport,
    fresh: set[tuple[str, str]],
    max_tries: int,
) -> None:
    g = payments_gateway_events
    with engine.connect() as conn:
        waiting = conn.execute(
            select(g.c.gateway, g.c.event_id, g.c.tries, g.c.updated_at)
            .where(g.c.status == EventStatus.UNMATCHED.value)
            .order_by(g.c.event_created_at, g.c.first_seen_at, g.c.event_id)
        ).all()
    for w in waiting:
        if (w.gateway, w.event_id) not in fresh and not retry_due(w.tries, w.updated_at, now):
            continue
        with engine.connect() as conn:
            row = conn.execute(
                select(g).where(g.c.gateway == w.gateway, g.c.event_id == w.event_id)
            ).one()
        ev = IncomingEvent(row.gateway, row.event_id, row.event_type, row.body or "", now)
        out, at = _apply_one(engine, ev, now, policy, report)
        _record(engine, ev, out, at, now)
        if out.status is not EventStatus.UNMATCHED:
            report.rematched += 1
            report.count(out.status)
            _note(report, ev, out)
        elif row.tries + 1 >= max_tries:
            with engine.begin() as conn:
                kept = conn.execute(
                    select(g).where(g.c.gateway == w.gateway, g.c.event_id == w.event_id)
                ).one()
                quarantine(conn, kept, f"unmatched after {kept.tries} tries: {out.detail}", now)
            report.quarantined += 1
            report.notes.append(
                f"{ev.source} event {ev.event_id} ({ev.event_type}) quarantined after "
                f"{row.tries + 1} tries: {out.detail}"
            )


def replay_quarantined(
    engine: Engine,
    now: datetime,
    event_ids: Sequence[str] | None = None,
    policy: RetryPolicy | None = None,
) -> ApplyReport:
    """Apply quarantined events again (all, or these ids), e.g. once the missing payment was
    recorded. Each goes back to the queue with a fresh try budget, then is applied at once; one
    still unmatched waits and is quarantined again after its tries."""
    if now.tzinfo is None:
        raise PaymentsError("times must be timezone-aware")
    report = ApplyReport()
    released = release(engine, now, event_ids)
    report.seen = len(released)
    _retry_unmatched(engine, now, policy, report, {(e.source, e.event_id) for e in released},
                     UNMATCHED_MAX_TRIES)  # fmt: skip
    g = payments_gateway_events
    with engine.connect() as conn:
        report.unmatched = conn.execute(
            select(func.count()).where(g.c.status == EventStatus.UNMATCHED.value)
        ).scalar_one()
    return report


def unmatched_events(engine: Engine) -> list[dict[str, Any]]:
    """Events still waiting for their payment (for operators and tests)."""
    g = payments_gateway_events
    with engine.connect() as conn:
        rows = conn.execute(
            select(g.c.gateway, g.c.event_id, g.c.event_type, g.c.detail, g.c.tries).where(
                g.c.status == EventStatus.UNMATCHED.value
            )
        ).all()
    return [dict(r._mapping) for r in rows]


def load_cursor(engine: Engine, name: str) -> dict[str, Any] | None:
    """A reader's position in the landing zone, kept in the ledger beside what it applied."""
    with engine.connect() as conn:
        raw = conn.execute(
            select(payments_landing_cursors.c.value).where(payments_landing_cursors.c.name == name)
        ).scalar_one_or_none()
    return json.loads(raw) if raw else None


def save_cursor(engine: Engine, name: str, value: Mapping[str, Any]) -> None:
    text = json.dumps(dict(value), sort_keys=True)
    with engine.begin() as conn:
        done = conn.execute(
            update(payments_landing_cursors)
            .where(payments_landing_cursors.c.name == name)
            .values(value=text)
        ).rowcount
        if not done:
            conn.execute(insert(payments_landing_cursors), {"name": name, "value": text})
