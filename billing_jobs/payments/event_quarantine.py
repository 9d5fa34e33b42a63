"""Gateway events that never found their payment: retried with exponential spacing for a bounded
number of tries, then moved to `payments_quarantined_events` with the reason, where an operator
lists, replays (`paysight webhooks replay`) or discards them. A quarantined event keeps its row in
`payments_gateway_events` (status `quarantined`), so a redelivery is still a duplicate."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update

from billing_jobs.ledger.schema import payments_gateway_events, payments_quarantined_events
from billing_jobs.payments.event_parsing import EventStatus, IncomingEvent

# Retried after 1, 2, 4, ... minutes (at most 12 h apart): 12 tries span about 41 hours, ample
# for a refund or dispute that overtook its payment; a forged or foreign event then leaves the
# queue instead of being re-processed on every run forever.
UNMATCHED_MAX_TRIES = 12
RETRY_BASE = timedelta(minutes=1)
RETRY_CAP = timedelta(hours=12)


def retry_due(tries: int, last_try: datetime, now: datetime) -> bool:
    """True when an unmatched event tried `tries` times, last at `last_try`, is due again."""
    wait = min(RETRY_CAP, RETRY_BASE * 2 ** max(0, min(tries - 1, 30)))
    return now >= last_try + wait


def quarantine(conn: Connection, row: Any, reason: str, now: datetime) -> None:
    """Move the unmatched event `row` (a `payments_gateway_events` row) to quarantine."""
    g, q = payments_gateway_events, payments_quarantined_events
    conn.execute(delete(q).where(q.c.gateway == row.gateway, q.c.event_id == row.event_id))
    conn.execute(
        insert(q),
        {"gateway": row.gateway, "event_id": row.event_id, "event_type": row.event_type,
         "reason": reason[:2000], "gateway_payment_id": row.gateway_payment_id, "body": row.body,
         "tries": row.tries, "first_seen_at": row.first_seen_at, "quarantined_at": now},
    )  # fmt: skip
    conn.execute(
        update(g)
        .where(g.c.gateway == row.gateway, g.c.event_id == row.event_id)
        .values(status=EventStatus.QUARANTINED.value, body=None, updated_at=now)
    )


def quarantined_events(engine: Engine) -> list[dict[str, Any]]:
    """The quarantine, oldest first, without bodies (for operators and tests)."""
    q = payments_quarantined_events
    cols = (q.c.gateway, q.c.event_id, q.c.event_type, q.c.reason, q.c.gateway_payment_id,
            q.c.tries, q.c.first_seen_at, q.c.quarantined_at)  # fmt: skip
    with engine.connect() as conn:
        rows = conn.execute(select(*cols).order_by(q.c.quarantined_at, q.c.event_id)).all()
    return [dict(r._mapping) for r in rows]


def release(
    engine: Engine, now: datetime, event_ids: Sequence[str] | None = None
) -> list[IncomingEvent]:
    """Take events out of quarantine (all, or those with these ids): each goes back to
    `unmatched` with its body and a fresh try budget, in one transaction, so a crash after this
    leaves them for the next regular run rather than lost. Returns them for applying now."""
    g, q = payments_gateway_events, payments_quarantined_events
    out: list[IncomingEvent] = []
    with engine.begin() as conn:
        query = select(q).order_by(q.c.first_seen_at, q.c.event_id)
        if event_ids is not None:
            query = query.where(q.c.event_id.in_(list(event_ids)))
        for row in conn.execute(query).all():
            conn.execute(
                update(g)
                .where(g.c.gateway == row.gateway, g.c.event_id == row.event_id)
                .values(status=EventStatus.UNMATCHED.value, body=row.body, tries=0,
                        detail=f"released from quarantine ({row.reason})"[:2000],
                        updated_at=now)
            )  # fmt: skip
            conn.execute(delete(q).where(q.c.gateway == row.gateway, q.c.event_id == row.event_id))
            out.append(
                IncomingEvent(row.gateway, row.event_id, row.event_type, row.body or "", now)
            )
    return out


def discard(engine: Engine, event_ids: Sequence[str]) -> int:
    """Drop quarantined events for good (their dedupe row stays: a redelivery is ignored)."""
    q = payments_quarantined_events
    with engine.begin() as conn:
        return conn.execute(delete(q).where(q.c.event_id.in_(list(event_ids)))).rowcount
