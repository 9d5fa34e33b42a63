"""Batched collection for bulk callers (the simulator, back-fills): many attempts recorded, charged
and finalized, many invoices marked paid, in the caller's transaction with plain DBAPI statements.

Same rules as the per-invoice path (`collection.collect_invoice`, `LedgerAttemptStore`,
`invoices.mark_invoice_paid`): an attempt is recorded `pending` before the gateway hears of it,
numbered 1, 2, 3... per invoice, refused while the invoice is paid or has an unresolved attempt,
and final attempts never change; an invoice is paid once."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from billing_jobs.errors import NotFoundError, ValidationError
from billing_jobs.ledger.rawsql import (
    from_db,
    is_sqlite,
    ph,
    sql_insert,
    sql_many,
    sql_rows,
    to_db,
)
from billing_jobs.payments.attempt_store import outcome_values
from billing_jobs.payments.charging import (
    AlreadyPaid,
    Attempt,
    AttemptInFlight,
    AttemptStatus,
    CollectionError,
    InvoiceCharge,
    gateway_truth,
)
from billing_jobs.payments.dunning import DunningState
from billing_jobs.payments.gateway import (
    Gateway,
    GatewayError,
    GatewayTimeout,
    PaymentResult,
    PaymentStatus,
    idempotency_key_for,
)

CHUNK = 500  # ids per IN (...) list, well under every driver's parameter limit
_PA_COLS = (
    "id, invoice_id, attempt_number, idempotency_key, status, gateway_payment_id, amount_minor,"
    " currency, decline_code, created_at, finalized_at"
)
OnTime = Callable[[datetime], None]


def _chunks(seq: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for i in range(0, len(seq), CHUNK):
        yield seq[i : i + CHUNK]


def _in(conn: Connection, n: int) -> str:
    return ", ".join([ph(conn)] * n)


def _attempt(r: Sequence[Any]) -> Attempt:
    """A payment_attempts row as LedgerAttemptStore reads it (pending + payment id = PROCESSING)."""
    pid, inv, num, key, status, gpid, amount, cur, code, created, finalized = r
    st = AttemptStatus.PROCESSING if status == "pending" and gpid else AttemptStatus(status)
    created_at = from_db(created)
    return Attempt(
        str(pid), str(inv), num, key, st, amount, cur, created_at,
        from_db(finalized) or created_at, gpid, code,
    )  # fmt: skip


class BatchAttemptStore:
    """The ledger's `payment_attempts`, many rows per statement. `conn` must be inside the
    caller's transaction (which on SQLite already holds the write lock)."""

    def __init__(self, conn: Connection, gateway: str) -> None:
        if not gateway:
            raise CollectionError("a gateway name is required")
        self.conn, self.gateway = conn, gateway
        self.sq = is_sqlite(conn)

    def _select(self, where: str, params: Sequence[Any]) -> list[Attempt]:
        sql = f"SELECT {_PA_COLS} FROM payment_attempts WHERE {where}"
        return [_attempt(r) for r in sql_rows(self.conn, sql, tuple(params))]

    def by_ids(self, ids: Sequence[int]) -> dict[int, Attempt]:
        out: dict[int, Attempt] = {}
        for part in _chunks(list(ids)):
            for a in self._select(f"id IN ({_in(self.conn, len(part))})", part):
                out[int(a.attempt_id)] = a
        return out

    def attempts_by_invoice(self, invoice_ids: Iterable[int | str]) -> dict[str, list[Attempt]]:
        """Every attempt of each invoice, in attempt order (the input of `retry_context`)."""
        ids = sorted({int(i) for i in invoice_ids})
        out: dict[str, list[Attempt]] = {str(i): [] for i in ids}
        for part in _chunks(ids):
            rows = self._select(
                f"invoice_id IN ({_in(self.conn, len(part))}) ORDER BY invoice_id, attempt_number",
                part,
            )
            for a in rows:
                out[a.invoice_id].append(a)
        return out

    def _statuses(self, invoice_ids: Sequence[int]) -> dict[int, list[str]]:
        """The statuses of each invoice's attempts so far (row-locking the invoices on
        PostgreSQL, as LedgerAttemptStore does, so attempts per invoice are serialized).
        NotFoundError when an invoice does not exist."""
        exists: set[int] = set()
        history: dict[int, list[str]] = {i: [] for i in invoice_ids}
        for part in _chunks(invoice_ids):
            marks = _in(self.conn, len(part))
            if not self.sq:
                sql_rows(
                    self.conn,
                    f"SELECT id FROM invoices WHERE id IN ({marks}) ORDER BY id FOR UPDATE",
                    tuple(part),
                )
            exists.update(
                r[0]
                for r in sql_rows(
                    self.conn, f"SELECT id FROM invoices WHERE id IN ({marks})", tuple(part)
                )
            )
            for inv, status in sql_rows(
                self.conn,
                f"SELECT invoice_id, status FROM payment_attempts WHERE invoice_id IN ({marks})",
                tuple(part),
            ):
                history[inv].append(status)
        missing = [i for i in invoice_ids if i not in exists]
        if missing:
            raise NotFoundError(f"invoice {missing[0]} does not exist")
        return history

    def record_pending_many(
        self, items: Sequence[tuple[InvoiceCharge, datetime]]
    ) -> list[Attempt | CollectionError]:
        """Record one pending attempt per item (the charge and its time), in order. An item is
        refused (the error in its place) when the invoice is paid, has an unresolved attempt
        (including an earlier item of this batch) or does not exist."""
        if not items:
            return []
        inv_ids = []
        for charge, now in items:
            if now.tzinfo is None:
                raise CollectionError("times must be timezone-aware")
            try:
                inv_ids.append(int(charge.invoice_id))
            except (TypeError, ValueError):
                raise CollectionError(
                    f"ledger invoice ids are integers, got {charge.invoice_id!r}"
                ) from None
        history = self._statuses(sorted(set(inv_ids)))
        out: list[Attempt | CollectionError] = []
        rows, keys = [], []
        for (charge, now), inv in zip(items, inv_ids, strict=True):
            seen = history[inv]
            if "succeeded" in seen:
                out.append(AlreadyPaid(f"invoice {inv} is already paid"))
                continue
            if "pending" in seen or "unknown" in seen:
                out.append(
                    AttemptInFlight(
                        f"invoice {inv} has an unresolved attempt; run the janitor first"
                    )
                )
                continue
            number = len(seen) + 1
            key = idempotency_key_for(charge.invoice_id, number)
            seen.append("pending")
            stamp = to_db(self.sq, now)
            rows.append((inv, number, key, "pending", self.gateway, None, charge.amount_minor,
                         charge.currency, None, stamp, None))  # fmt: skip
            keys.append(key)
            pending = Attempt("", str(inv), number, key, AttemptStatus.PENDING,
                              charge.amount_minor, charge.currency, now, now)  # fmt: skip
            out.append(pending)
        sql_insert(
            self.conn, "payment_attempts",
            ("invoice_id", "attempt_number", "idempotency_key", "status", "gateway",
             "gateway_payment_id", "amount_minor", "currency", "decline_code", "created_at",
             "finalized_at"),
            rows,
        )  # fmt: skip
        ids: dict[str, int] = {}
        for part in _chunks(keys):
            marks = _in(self.conn, len(part))
            sql = f"SELECT idempotency_key, id FROM payment_attempts WHERE idempotency_key IN ({marks})"
            ids.update(sql_rows(self.conn, sql, tuple(part)))  # type: ignore[arg-type]
        return [
            a if isinstance(a, CollectionError) or a.attempt_id else _with_id(a, ids) for a in out
        ]

    def finalize_many(
        self, items: Sequence[tuple[Attempt, PaymentResult, datetime]]
    ) -> list[Attempt]:
        """Apply gateway outcomes; only unresolved attempts change (final states ignore
        duplicate or late outcomes). Returns the stored attempts, in order."""
        p = ph(self.conn)
        by_kind: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
        for a, result, now in items:
            if now.tzinfo is None:
                raise CollectionError("times must be timezone-aware")
            values = outcome_values(result, to_db(self.sq, now))
            cols = tuple(sorted(values))
            by_kind.setdefault(cols, []).append((*(values[c] for c in cols), int(a.attempt_id)))
        for cols, rows in by_kind.items():
            sets = ", ".join(f"{c} = {p}" for c in cols)
            sql_many(
                self.conn,
                f"UPDATE payment_attempts SET {sets} WHERE id = {p} "
                "AND status IN ('pending', 'unknown')",
                rows,
            )
        stored = self.by_ids([int(a.attempt_id) for a, _, _ in items])
        return [stored[int(a.attempt_id)] for a, _, _ in items]

    def mark_unknown_many(self, attempts: Sequence[Attempt]) -> list[Attempt]:
        """pending -> unknown (the gateway call timed out); other states stay."""
        if not attempts:
            return []
        p = ph(self.conn)
        sql_many(
            self.conn,
            f"UPDATE payment_attempts SET status = 'unknown' WHERE id = {p} AND status = 'pending'",
            [(int(a.attempt_id),) for a in attempts],
        )
        stored = self.by_ids([int(a.attempt_id) for a in attempts])
        return [stored[int(a.attempt_id)] for a in attempts]

    def list_unknown(
        self, stale_before: datetime, among: Collection[int] | None = None
    ) -> list[Attempt]:
        """UNKNOWN and PROCESSING attempts, plus PENDING ones older than `stale_before`.
        `among`: only these attempt ids (a caller that knows every unresolved attempt, like the
        simulator, spares a scan of the whole table: `status` has no index)."""
        if stale_before.tzinfo is None:
            raise CollectionError("times must be timezone-aware")
        p = ph(self.conn)
        cond = (
            "(status = 'unknown' OR (status = 'pending' AND gateway_payment_id IS NOT NULL)"
            f" OR (status = 'pending' AND created_at <= {p}))"
        )
        stale = to_db(self.sq, stale_before)
        if among is None:
            return self._select(f"{cond} ORDER BY created_at, id", (stale,))
        out: list[Attempt] = []
        for part in _chunks(sorted(among)):
            out += self._select(f"id IN ({_in(self.conn, len(part))}) AND {cond}", (*part, stale))
        return sorted(out, key=lambda a: (a.created_at, int(a.attempt_id)))


def _with_id(a: Attempt, ids: dict[str, int]) -> Attempt:
    return Attempt(
        str(ids[a.idempotency_key]), a.invoice_id, a.attempt_number, a.idempotency_key, a.status,
        a.amount_minor, a.currency, a.created_at, a.updated_at,
    )  # fmt: skip


def collect_invoices(
    store: BatchAttemptStore,
    gateway: Gateway,
    items: Sequence[tuple[InvoiceCharge, datetime]],
    *,
    on_time: OnTime | None = None,
) -> list[Attempt | CollectionError]:
    """`collect_invoice` for many invoices: every attempt is recorded pending first (one
    round trip), then each is charged in order (`on_time(at)` lets a simulated gateway's clock
    follow each attempt's time) and all outcomes are written in one batch. A refused item gets
    `AlreadyPaid` / `AttemptInFlight` in its place instead of an attempt; a timeout leaves the
    attempt UNKNOWN."""
    recorded = store.record_pending_many(items)
    finals: list[tuple[Attempt, PaymentResult, datetime]] = []
    unknown: list[Attempt] = []
    for (charge, now), a in zip(items, recorded, strict=True):
        if isinstance(a, CollectionError):
            continue
        if on_time is not None:
            on_time(now)
        metadata = {**charge.metadata, "invoice_id": charge.invoice_id,
                    "attempt_number": str(a.attempt_number)}  # fmt: skip
        try:
            result = gateway.charge(
                charge.customer_id, charge.payment_method, charge.amount_minor, charge.currency,
                a.idempotency_key, off_session=True, metadata=metadata,
            )  # fmt: skip
        except GatewayTimeout:
            unknown.append(a)
            continue
        except GatewayError as e:
            # A definite rejection (bad request, missing method): nothing was charged.
            result = PaymentResult(PaymentStatus.FAILED, None, charge.amount_minor,
                                   charge.currency, decline_code=e.code or "gateway_error")  # fmt: skip
        finals.append((a, result, now))
    done = {int(a.attempt_id): a for a in store.finalize_many(finals)}
    done.update((int(a.attempt_id), a) for a in store.mark_unknown_many(unknown))
    return [a if isinstance(a, CollectionError) else done[int(a.attempt_id)] for a in recorded]


def resolve_unknown_many(
    store: BatchAttemptStore,
    gateway: Gateway,
    now: datetime,
    stale_after: timedelta = timedelta(minutes=15),
    *,
    among: Collection[int] | None = None,
) -> list[Attempt]:
    """`resolve_unknown_attempts` with the outcomes written in one batch. Never charges.
    `among`: the caller knows every unresolved attempt is one of these ids."""
    todo: list[tuple[Attempt, PaymentResult, datetime]] = []
    for attempt in store.list_unknown(stale_before=now - stale_after, among=among):
        result = gateway_truth(gateway, attempt, now, stale_after)
        if result is not None:
            todo.append((attempt, result, now))
    return store.finalize_many(todo)


def mark_invoices_paid(conn: Connection, items: Sequence[tuple[int, datetime]]) -> list[bool]:
    """`mark_invoice_paid` (in full) for many invoices, in order: True when the invoice became
    paid, False when it could not (already paid or void), as `InvalidTransitionError` would say.
    An unknown invoice raises NotFoundError and nothing is written."""
    return _move_invoices(conn, items, "paid")


def mark_invoices_uncollectible(
    conn: Connection, items: Sequence[tuple[int, datetime]]
) -> list[bool]:
    """`mark_uncollectible` for many open invoices: True when written off, False otherwise."""
    return _move_invoices(conn, items, "uncollectible")


def _move_invoices(conn: Connection, items: Sequence[tuple[int, datetime]], to: str) -> list[bool]:
    from billing_jobs.invoicing.invoices import INVOICE_TRANSITIONS

    if not items:
        return []
    sq, p = is_sqlite(conn), ph(conn)
    ids = sorted({int(i) for i, _ in items})
    state: dict[int, list[Any]] = {}
    lock = "" if sq else " FOR UPDATE"
    for part in _chunks(ids):
        sql = (
            "SELECT id, status, amount_due_minor, amount_paid_minor FROM invoices "
            f"WHERE id IN ({_in(conn, len(part))}){lock}"
        )
        for r in sql_rows(conn, sql, tuple(part)):
            state[r[0]] = list(r[1:])
    missing = [i for i in ids if i not in state]
    if missing:
        raise NotFoundError(f"invoice {missing[0]} does not exist")
    out, rows = [], []
    for inv_id, at in items:
        if at.tzinfo is None:
            raise ValidationError("at must be timezone-aware")
        st = state[int(inv_id)]
        # mark_invoice_paid pays the full amount due, so a part-paid invoice is refused too.
        if to not in INVOICE_TRANSITIONS[st[0]] or (to == "paid" and st[2] != 0):
            out.append(False)
            continue
        st[0] = to
        if to == "paid":
            paid = st[1]  # amount_paid becomes amount_due: paid in full, exactly once
            st[2] = paid
            rows.append(("paid", paid, to_db(sq, at), int(inv_id)))
        else:
            rows.append((to, int(inv_id)))
        out.append(True)
    if rows and to == "paid":
        sql_many(
            conn,
            f"UPDATE invoices SET status = {p}, amount_paid_minor = {p}, paid_at = {p} "
            f"WHERE id = {p}",
            rows,
        )
    elif rows:
        sql_many(conn, f"UPDATE invoices SET status = {p} WHERE id = {p}", rows)
    return out


# -- linking a bulk-built world to the payments service ----------------------------------------
def link_gateway_customers(
    conn: Connection, gateway: str, links: Sequence[tuple[int, str]], now: datetime
) -> int:
    """`payments_service.link_gateway_customer` for many (customer id, gateway customer id)
    pairs: idempotent, and refuses to re-point an existing link. Returns how many were new."""
    from billing_jobs.payments.state import PaymentsError

    if now.tzinfo is None:
        raise ValidationError("now must be timezone-aware")
    sq, p = is_sqlite(conn), ph(conn)
    current: dict[int, str] = dict(
        sql_rows(
            conn,  # type: ignore[arg-type]
            f"SELECT customer_id, gateway_customer_id FROM payments_gateway_customers "
            f"WHERE gateway = {p}",
            (gateway,),
        )
    )
    known = {r[0] for r in sql_rows(conn, "SELECT id FROM customers")}
    rows = []
    for cid, gcus in links:
        if not gcus:
            raise PaymentsError("a gateway customer id is required")
        if cid not in known:
            raise NotFoundError(f"customer {cid} does not exist")
        if cid in current:
            if current[cid] != gcus:
                raise PaymentsError(
                    f"customer {cid} is already {current[cid]} at {gateway}, not {gcus}"
                )
            continue
        current[cid] = gcus
        rows.append((cid, gateway, gcus, to_db(sq, now)))
    sql_insert(conn, "payments_gateway_customers",
                ("customer_id", "gateway", "gateway_customer_id", "created_at"), rows)  # fmt: skip
    return len(rows)


def save_collection_states(
    conn: Connection,
    gateway: str,
    states: Sequence[tuple[int, datetime | None, DunningState | None]],
    now: datetime,
) -> int:
    """Hand open invoices to the payments service: (invoice id, next retry time, dunning
    state) rows in `payments_collection_state`, so `run_due_retries` and `run_dunning` carry
    on where a bulk collector stopped. Existing rows are replaced."""
    # dump_dunning: the exact format run_dunning reads back
    from billing_jobs.payments.state import dump_dunning

    sq, p = is_sqlite(conn), ph(conn)
    if states:
        sql_many(
            conn,
            f"DELETE FROM payments_collection_state WHERE invoice_id = {p}",
            [(int(i),) for i, _, _ in states],
        )
    rows = [
        (int(i), gateway, to_db(sq, at), dump_dunning(d) if d is not None else None, 0,
         to_db(sq, now))
        for i, at, d in states
    ]  # fmt: skip
    sql_insert(conn, "payments_collection_state",
                ("invoice_id", "gateway", "next_retry_at", "dunning_json", "closed", "updated_at"),
                rows)  # fmt: skip
    return len(rows)


def save_method_details(
    conn: Connection,
    details: Sequence[tuple[int, str | None, str | None, int | None, int | None, str | None]],
) -> int:
    """Display details the gateway reported for stored methods (payment method id, brand,
    last4, expiry month and year, issuer) in `payments_method_details`, as
    `add_payment_method` keeps them. Never card numbers: the gateway only returns these."""

    p = ph(conn)
    sql_many(conn, f"DELETE FROM payments_method_details WHERE payment_method_id = {p}",
             [(d[0],) for d in details])  # fmt: skip
    sql_insert(conn, "payments_method_details",
               ("payment_method_id", "brand", "last4", "exp_month", "exp_year", "issuer"),
               details)  # fmt: skip
    return len(details)


__all__ = [
    "BatchAttemptStore",
    "collect_invoices",
    "link_gateway_customers",
    "mark_invoices_paid",
    "mark_invoices_uncollectible",
    "resolve_unknown_many",
    "save_collection_states",
    "save_method_details",
]
