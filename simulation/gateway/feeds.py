"""Read side of the simulated gateway: listings since a cursor and Stripe-signed webhooks."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from billing_jobs.payments.gateway import (
    BalanceTransaction,
    Dispute,
    GatewayEvent,
    NotFound,
    Page,
    PaymentResult,
    Payout,
    Refund,
)
from ingestion.gateways.cursor import page_since
from ingestion.webhooks.signatures import sign_stripe
from simulation.gateway.store import SimStore, _dt, _ts


@dataclass(frozen=True)
class WebhookDelivery:
    """One signed webhook ready to POST: headers and the exact body bytes."""

    event_id: str
    headers: Mapping[str, str]
    body: bytes


class SimulatedFeeds:
    """Mixin for `SimulatedPort`: everything here reads state the port methods wrote."""

    store: SimStore
    webhook_secret: str
    _now: Callable[[datetime | None], datetime]
    _advance: Callable[[sqlite3.Connection, datetime], None]
    _result: Callable[[sqlite3.Row], PaymentResult]
    _refund: Callable[[sqlite3.Row], Refund]

    # -- listings ------------------------------------------------------------------------------
    def _list(
        self, table: str, created: str, cursor: str | None, limit: int, convert: Callable
    ) -> Page:
        rows = self.store.all(f"select * from {table}")  # table names are ours, never input
        key = "seq" if table == "sim_events" else "id"
        items, nxt = page_since(
            rows, cursor, limit, lambda r: r[created], lambda r: str(r[key]).zfill(12)
        )
        return Page([convert(r) for r in items], nxt)

    def list_payments(self, cursor: str | None = None, limit: int = 100) -> Page[PaymentResult]:
        return self._list("sim_payments", "created_at", cursor, limit, self._result)

    def list_refunds(self, cursor: str | None = None, limit: int = 100) -> Page[Refund]:
        return self._list("sim_refunds", "created_at", cursor, limit, self._refund)

    def list_disputes(self, cursor: str | None = None, limit: int = 100) -> Page[Dispute]:
        return self._list(
            "sim_disputes", "created_at", cursor, limit,
            lambda r: Dispute(r["id"], r["payment_id"], r["amount_minor"], r["currency"], r["reason"],
                              r["status"], _dt(r["created_at"])),
        )  # fmt: skip

    def list_balance_transactions(
        self, cursor: str | None = None, limit: int = 100
    ) -> Page[BalanceTransaction]:
        return self._list(
            "sim_balance_txns", "created_at", cursor, limit,
            lambda r: BalanceTransaction(r["id"], r["source_id"], r["kind"], r["amount_minor"], r["fee_minor"],
                                         r["fee_tax_minor"], r["net_minor"], r["currency"], _dt(r["created_at"]),
                                         _dt(r["available_on"])),
        )  # fmt: skip

    def list_payouts(self, cursor: str | None = None, limit: int = 100) -> Page[Payout]:
        return self._list(
            "sim_payouts", "created_at", cursor, limit,
            lambda r: Payout(r["id"], r["amount_minor"], r["currency"], r["status"], _dt(r["arrival_at"]),
                             r["fee_minor"], r["fee_tax_minor"], r["utr"]),
        )  # fmt: skip

    def list_events(self, cursor: str | None = None, limit: int = 100) -> Page[GatewayEvent]:
        return self._list(
            "sim_events",
            "created_at",
            cursor,
            limit,
            lambda r: GatewayEvent(
                r["id"], r["type"], _dt(r["created_at"]), r["object_id"], json.loads(r["data"])
            ),  # type: ignore[arg-type]
        )

    # -- webhooks ------------------------------------------------------------------------------
    def _delivery(self, r: sqlite3.Row, at: datetime) -> WebhookDelivery:
        body = json.dumps(
            {"id": r["id"], "object": "event", "type": r["type"], "created": r["created_at"],
             "data": {"object": json.loads(r["data"])}},
            sort_keys=True, separators=(",", ":"),
        ).encode()  # fmt: skip
        headers = {
            "Content-Type": "application/json",
            "Stripe-Signature": sign_stripe(self.webhook_secret, body, at.timestamp()),
        }
        return WebhookDelivery(r["id"], headers, body)

    def webhooks_due(
        self, now: datetime | None = None, *, mark: bool = True
    ) -> list[WebhookDelivery]:
        """Undelivered events up to `now`, signed at `now`; with `mark`, they count as delivered
        (at-least-once: `redeliver` sends one again, as a real gateway does after a non-2xx)."""
        at = self._now(now)
        with self.store.transaction() as c:
            self._advance(c, at)
            rows = c.execute(
                "select * from sim_events where delivered=0 and created_at<=? order by created_at, seq",
                (_ts(at),),
            ).fetchall()
            if mark:
                c.executemany(
                    "update sim_events set delivered=1 where id=?", [(r["id"],) for r in rows]
                )
        return [self._delivery(r, at) for r in rows]

    def send_webhooks(
        self, url: str, now: datetime | None = None, post: Callable[..., Any] | None = None
    ) -> dict[str, int]:
        """POST every due event to `url` (e.g. `/webhooks/simulated`); only a 2xx marks it
        delivered, so a receiver that answered 4xx/5xx or was down gets it again next time.
        Returns event id -> HTTP status (0 when the receiver could not be reached)."""
        import httpx  # only the sending side needs an HTTP client

        send = post or httpx.post
        statuses: dict[str, int] = {}
        for d in self.webhooks_due(now, mark=False):
            try:
                status = send(url, content=d.body, headers=dict(d.headers), timeout=10).status_code
            except (OSError, httpx.TransportError):
                status = 0
            statuses[d.event_id] = status
            if 200 <= status < 300:
                with self.store.transaction() as c:
                    c.execute("update sim_events set delivered=1 where id=?", (d.event_id,))
        return statuses

    def redeliver(self, event_id: str, now: datetime | None = None) -> WebhookDelivery:
        at = self._now(now)
        row = self.store.one("select * from sim_events where id=?", event_id)
        if row is None:
            raise NotFound(f"no such event {event_id!r}")
        return self._delivery(row, at)
