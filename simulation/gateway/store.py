"""SQLite state of the simulated gateway, so it survives process crashes (SIGKILL) between calls."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from billing_jobs.payments.gateway import GatewayError

SCHEMA = """
create table if not exists sim_customers (
  id text primary key, email text, name text, metadata text not null, created_at integer not null);
create table if not exists sim_payment_methods (
  token text primary key, customer_id text, kind text not null, issuer text not null,
  brand text, last4 text, exp_month integer, exp_year integer, attached integer not null default 0);
create table if not exists sim_payments (
  id text primary key, customer_id text not null, pm_token text not null, method text not null,
  issuer text not null, amount_minor integer not null, currency text not null,
  status text not null, decline_code text, idempotency_key text not null unique,
  invoice_id text, metadata text not null, created_at integer not null,
  resolve_at integer, final_status text, final_code text,
  amount_refunded_minor integer not null default 0, dispute_at integer);
create index if not exists sim_payments_invoice on sim_payments(invoice_id, created_at);
create index if not exists sim_payments_pending on sim_payments(status, resolve_at);
create index if not exists sim_payments_dispute on sim_payments(dispute_at) where dispute_at is not null;
create table if not exists sim_refunds (
  id text primary key, payment_id text not null, amount_minor integer not null,
  currency text not null, status text not null, created_at integer not null,
  idempotency_key text unique);
create table if not exists sim_disputes (
  id text primary key, payment_id text not null unique, amount_minor integer not null,
  currency text not null, reason text not null, status text not null, created_at integer not null);
create table if not exists sim_balance_txns (
  id text primary key, source_id text not null, kind text not null, amount_minor integer not null,
  fee_minor integer not null, fee_tax_minor integer not null, net_minor integer not null,
  currency text not null, created_at integer not null, available_on integer not null,
  payout_id text);
create index if not exists sim_balance_unpaid on sim_balance_txns(available_on) where payout_id is null;
create table if not exists sim_payouts (
  id text primary key, amount_minor integer not null, currency text not null, status text not null,
  arrival_at integer not null, fee_minor integer not null, fee_tax_minor integer not null,
  utr text not null, created_at integer not null);
create table if not exists sim_events (
  seq integer primary key autoincrement, id text not null unique, type text not null,
  created_at integer not null, object_id text, data text not null,
  delivered integer not null default 0);
create table if not exists sim_idempotency (
  key text primary key, request_hash text not null, payment_id text);
"""


class SimStore:
    """One SQLite connection; every mutation runs in `transaction()` (BEGIN IMMEDIATE)."""

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self.conn.row_factory = sqlite3.Row
        if self.path != ":memory:":
            self.conn.execute("pragma journal_mode=wal")
        self.conn.execute("pragma synchronous=full")
        self.conn.executescript(SCHEMA)
        self.serial, self.owned = 0, False

    def begin(self, *, cache: bool = False) -> None:
        """Start a write transaction (BEGIN IMMEDIATE) that later calls join until `commit`.
        `cache=True` (a long transaction of many calls, like a simulated day) lets the gateway
        remember what is due next instead of asking SQLite on every call."""
        self.conn.execute("begin immediate")
        self.serial += 1  # a new transaction: what was cached about the state may be stale
        self.owned = cache

    def commit(self) -> None:
        self.owned = False
        self.conn.execute("commit")

    def rollback(self) -> None:
        self.owned = False
        self.conn.execute("rollback")

    def cache_ok(self) -> int | None:
        """The serial of the running transaction when it was started here with `cache=True`
        (no other connection can write until it ends), else None: nothing may be cached."""
        return self.serial if self.owned and self.conn.in_transaction else None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        if self.conn.in_transaction:  # nested use joins the outer transaction
            yield self.conn
            return
        self.begin()
        try:
            yield self.conn
        except BaseException:
            self.rollback()
            raise
        self.commit()

    def one(self, sql: str, *args: object) -> sqlite3.Row | None:
        return self.conn.execute(sql, args).fetchone()

    def all(self, sql: str, *args: object) -> list[sqlite3.Row]:
        return self.conn.execute(sql, args).fetchall()

    def close(self) -> None:
        self.conn.close()


def _ts(dt: datetime) -> int:
    if dt.tzinfo is None:
        raise GatewayError("simulated gateway times must be timezone-aware")
    return int(dt.timestamp())


def _dt(ts: int | None) -> datetime | None:
    return datetime.fromtimestamp(ts, UTC) if ts is not None else None
