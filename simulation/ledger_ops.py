"""How the world writes the ledger: `BatchOps` (batched billing_jobs functions, plain DBAPI, the
default) or `RowOps` (one service call per invoice, the original path kept as the benchmark's
baseline). Both run the same domain rules and build the same world for a seed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import Connection

from billing_jobs import service
from billing_jobs.errors import InvalidTransitionError
from billing_jobs.payments.attempt_store import LedgerAttemptStore
from billing_jobs.payments.batch import (
    BatchAttemptStore,
    collect_invoices,
    mark_invoices_paid,
    mark_invoices_uncollectible,
    resolve_unknown_many,
)
from billing_jobs.payments.charging import (
    UNRESOLVED,
    AlreadyPaid,
    Attempt,
    AttemptInFlight,
    CollectionError,
    InvoiceCharge,
    collect_invoice,
    resolve_unknown_attempts,
)
from billing_jobs.payments.gateway import Gateway
from billing_jobs.subscriptions.batch import transition_subscriptions

SetTime = Callable[[datetime], None]


class RowOps:
    """The per-invoice service path: each attempt, payment and status change on its own."""

    name = "rows"

    def __init__(self, conn: Connection, gateway: Gateway, gateway_name: str, set_time: SetTime):
        self.conn, self.gw, self.set_time = conn, gateway, set_time
        # The world keeps the retry schedule itself (saved with save_collection_states).
        self.store = LedgerAttemptStore(conn, gateway_name, keeps_own_schedule=True)

    def collect(
        self, items: Sequence[tuple[InvoiceCharge, datetime]]
    ) -> list[Attempt | CollectionError]:
        out: list[Attempt | CollectionError] = []
        for charge, at in items:
            self.set_time(at)
            try:
                out.append(collect_invoice(self.store, self.gw, charge, at))
            except (AlreadyPaid, AttemptInFlight) as e:
                out.append(e)
        return out

    def resolve(self, now: datetime) -> list[Attempt]:
        self.set_time(now)
        return resolve_unknown_attempts(self.store, self.gw, now)

    def attempts(self, invoice_ids: Sequence[int]) -> dict[str, list[Attempt]]:
        return {str(i): self.store.attempts(str(i)) for i in invoice_ids}

    def mark_paid(self, items: Sequence[tuple[int, datetime]]) -> list[bool]:
        return [self._try(service.mark_invoice_paid, i, at) for i, at in items]

    def write_off(self, items: Sequence[tuple[int, datetime]]) -> list[bool]:
        return [self._try(service.mark_uncollectible, i, at) for i, at in items]

    def _try(self, fn: Callable, invoice_id: int, at: datetime) -> bool:
        try:
            fn(self.conn, invoice_id, at=at)
        except InvalidTransitionError:
            return False
        return True

    def transition(self, sub_id: int, to: str, at: datetime, reason: str) -> bool:
        try:
            with self.conn.begin_nested():
                service.transition_subscription(self.conn, sub_id, to, at=at, reason=reason)
        except InvalidTransitionError:
            return False
        return True


class BatchOps(RowOps):
    """The batched path: attempts recorded, finalized and paid many rows per statement.
    `unresolved` (kept by the caller across days) holds the id of every attempt this world
    left unresolved, so the janitor reads just those instead of scanning all attempts."""

    name = "batched"

    def __init__(
        self,
        conn: Connection,
        gateway: Gateway,
        gateway_name: str,
        set_time: SetTime,
        unresolved: set[int] | None = None,
    ):
        super().__init__(conn, gateway, gateway_name, set_time)
        self.batch = BatchAttemptStore(conn, gateway_name)
        self.unresolved = unresolved

    def _note(self, attempts: Sequence[Attempt | CollectionError]) -> None:
        if self.unresolved is None:
            return
        for a in attempts:
            if isinstance(a, Attempt):
                if a.status in UNRESOLVED:
                    self.unresolved.add(int(a.attempt_id))
                else:
                    self.unresolved.discard(int(a.attempt_id))

    def collect(
        self, items: Sequence[tuple[InvoiceCharge, datetime]]
    ) -> list[Attempt | CollectionError]:
        out = collect_invoices(self.batch, self.gw, items, on_time=self.set_time)
        self._note(out)
        return out

    def resolve(self, now: datetime) -> list[Attempt]:
        self.set_time(now)
        out = resolve_unknown_many(self.batch, self.gw, now, among=self.unresolved)
        self._note(out)
        return out

    def attempts(self, invoice_ids: Sequence[int]) -> dict[str, list[Attempt]]:
        return self.batch.attempts_by_invoice(invoice_ids)

    def mark_paid(self, items: Sequence[tuple[int, datetime]]) -> list[bool]:
        return mark_invoices_paid(self.conn, items)

    def write_off(self, items: Sequence[tuple[int, datetime]]) -> list[bool]:
        return mark_invoices_uncollectible(self.conn, items)

    def transition(self, sub_id: int, to: str, at: datetime, reason: str) -> bool:
        return transition_subscriptions(self.conn, [(sub_id, to, at, reason)])[0]
