"""Copying a gateway's objects into ``raw.gateway_*`` through the `Gateway` port.

Every list is read incrementally from a cursor kept in the warehouse and upserted by id, so a
re-run reads only what is new and never duplicates. Payments whose status changes later (UPI
that settles or fails after minutes) are brought up to date from the gateway's events, applied
in event order, so late and out-of-order deliveries converge on the newest state.

Real gateways (Stripe, Razorpay) also list their objects whole (`ObjectListing`): their
payments, customers and events land through the normalizers (ingestion.normalizers.raw_rows),
so a payment keeps its method, customer, issuer, card brand and country, decline and fee.
The simulated gateway is read through the port alone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import duckdb
import pandas as pd

from billing_jobs.payments.gateway import (
    BalanceTransaction,
    Dispute,
    Gateway,
    GatewayEvent,
    NotFound,
    Page,
    PaymentResult,
    PaymentStatus,
    Payout,
    Refund,
    Unsupported,
)
from ingestion.landing_loads import get_cursor, set_cursor
from ingestion.normalizers.common import NormalizationError, scrub
from ingestion.normalizers.raw_rows import RAW_CHARGE_COLUMNS, RAW_LISTINGS
from ingestion.warehouse import upsert_dataframe

log = logging.getLogger(__name__)
PAGE_SIZE = 500
# The raw contract (dbt_project/models/staging/_raw__sources.yml): tables exist even when empty.
RAW_GATEWAY_DDL = {
    "gateway_charges": "charge_id varchar, gateway varchar, customer_id varchar, "
    "gateway_customer_id varchar, gateway_charge_id varchar, "
    "invoice_id varchar, amount_minor bigint, currency varchar, status varchar, method varchar, "
    "issuer varchar, card_brand varchar, card_country varchar, "
    "decline_code varchar, attempt_number bigint, fee_minor bigint, "
    "fee_tax_minor bigint, balance_transaction_id varchar, settlement_id varchar, "
    "created_at timestamp, settled_at timestamp, raw_json varchar",
    "gateway_customers": "id varchar, gateway varchar, created_at timestamp, "
    "paysight_customer_id varchar, currency varchar, country varchar, delinquent boolean, "
    "raw_json varchar",
    "gateway_events": "id varchar, gateway varchar, type varchar, created_at timestamp, "
    "object_id varchar, object_type varchar, api_version varchar, raw_json varchar",
    "gateway_refunds": "id varchar, gateway varchar, created_at timestamp, status varchar, "
    "amount_minor bigint, currency varchar, payment_id varchar, reason varchar",
    "gateway_disputes": "id varchar, gateway varchar, created_at timestamp, status varchar, "
    "amount_minor bigint, currency varchar, payment_id varchar, reason varchar",
    "gateway_balance_transactions": "id varchar, gateway varchar, source_id varchar, "
    "kind varchar, amount_minor bigint, fee_minor bigint, fee_tax_minor bigint, "
    "net_minor bigint, currency varchar, created_at timestamp, available_on timestamp",
    "gateway_settlements": "id varchar, gateway varchar, created_at timestamp, status varchar, "
    "amount_minor bigint, fee_minor bigint, tax_minor bigint, currency varchar, utr varchar",
}


# Columns added since the first release: a warehouse made before gets them on the next sync.
ADDED_COLUMNS = {
    "gateway_charges": ("gateway_customer_id", "gateway_charge_id", "card_brand", "card_country"),
}


@runtime_checkable
class ObjectListing(Protocol):
    """A gateway that lists its objects as the API returns them (see `RAW_LISTINGS`)."""

    def list_objects(
        self, kind: str, cursor: str | None = None, limit: int = 100
    ) -> Page[dict]: ...


def ensure_raw_gateway_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema if not exists raw")
    for table, columns in RAW_GATEWAY_DDL.items():
        con.execute(f"create table if not exists raw.{table} ({columns})")
    for table, added in ADDED_COLUMNS.items():
        for column in added:
            con.execute(f"alter table raw.{table} add column if not exists {column} varchar")


STATUS = {
    "succeeded": "succeeded",
    "failed": "failed",
    "processing": "pending",
    "pending": "pending",
    "requires_action": "failed",
    "unknown": "pending",
}


def _pages(
    fetch: Callable[..., Page[Any]], cursor: str | None
) -> Iterator[tuple[list, str | None]]:
    while True:
        page = fetch(cursor, PAGE_SIZE)
        items = list(page.items)
        if items:
            yield items, page.next_cursor or cursor
        if not page.next_cursor or not items:
            return
        cursor = page.next_cursor


def _utc(ts: datetime | None) -> datetime | None:
    """UTC-naive, as the raw tables store timestamps."""
    if ts is None:
        return None
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo else ts


def payment_row(p: PaymentResult, gateway: str) -> dict[str, Any]:
    meta = dict(p.metadata or {})
    status = STATUS.get(PaymentStatus(p.status).value, "pending")
    decline = p.decline_code
    if p.status == PaymentStatus.REQUIRES_ACTION and not decline:
        decline = "authentication_required"
    return {
        "charge_id": p.gateway_payment_id,
        "gateway": gateway,
        "customer_id": meta.get("paysight_customer_id") or meta.get("customer_id"),
        "gateway_customer_id": None,
        "gateway_charge_id": p.gateway_payment_id,
        "invoice_id": meta.get("invoice_id"),
        "amount_minor": int(p.amount_minor),
        "currency": p.currency.upper(),
        "status": status,
        "method": meta.get("method"),
        "issuer": meta.get("issuer"),
        "card_brand": meta.get("card_brand"),
        "card_country": meta.get("card_country"),
        "decline_code": decline,
        "attempt_number": int(meta.get("attempt_number", 1)),
        "fee_minor": 0,
        "fee_tax_minor": 0,
        "balance_transaction_id": None,
        "settlement_id": None,
        "created_at": _utc(p.created_at),
        "settled_at": None,
        "raw_json": json.dumps(asdict(p), default=str, sort_keys=True),
    }


def _frame(rows: list[dict], columns: list[str] | None = None) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=columns)
    for col in df.columns:
        if col.endswith("_minor") or col == "attempt_number":
            df[col] = df[col].astype("int64")
        elif col.endswith("_at") or col == "available_on":
            df[col] = pd.to_datetime(df[col]).astype("datetime64[us]")
        elif col == "delinquent":
            df[col] = df[col].astype("boolean")
        elif df[col].isna().all():
            df[col] = df[col].astype("string")
    return df


def sync_gateway(gateway: Gateway, name: str, con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Copy payments, refunds, disputes, balance transactions and payouts; apply events.

    From an `ObjectListing` gateway, payments, customers and events are the whole objects,
    normalized; counts then include `customers` and `events` (rows landed in raw tables).
    `events_applied` counts the payment status changes taken from events.
    """
    ensure_raw_gateway_tables(con)
    cursors: dict[str, str | None] = dict(get_cursor(con, f"gateway:{name}") or {})
    counts: dict[str, int] = {}

    def copy(kind: str, fetch, to_row, table: str, key: str, columns=None) -> list[dict]:
        total, landed = 0, []
        try:
            for items, cursor in _pages(fetch, cursors.get(kind)):
                rows = _rows_or_quarantine(con, name, kind, items, to_row)
                counts["quarantined"] = counts.get("quarantined", 0) + len(items) - len(rows)
                if not rows:
                    cursors[kind] = cursor
                    continue
                df = _frame(rows, list(columns) if columns else None)
                df = df.drop_duplicates(subset=[key], keep="last")
                total += upsert_dataframe(con, "raw", table, df, key=key)
                landed += rows
                cursors[kind] = cursor
        except (Unsupported, NotFound) as exc:
            # This gateway (or server: localstripe has no /v1/disputes) has no such listing;
            # its data arrives another way. The cursor stays put, so nothing is skipped later.
            log.warning("gateway %s has no %s listing: %s", name, kind, exc)
        counts[kind] = total
        return landed

    whole = isinstance(gateway, ObjectListing) and (name, "payments") in RAW_LISTINGS
    event_rows: list[dict] | None = None
    if whole:
        for (gw, kind), (table, key, columns, normalize) in RAW_LISTINGS.items():
            if gw != name:
                continue
            fetch = _listing(gateway, kind)  # type: ignore[arg-type]
            landed = copy(kind, fetch, normalize, table, key, columns)
            if kind == "events":
                event_rows = landed
    else:
        copy("payments", gateway.list_payments, lambda p: payment_row(p, name),
             "gateway_charges", "charge_id", RAW_CHARGE_COLUMNS)  # fmt: skip
    copy("refunds", gateway.list_refunds, lambda r: _refund_row(r, name), "gateway_refunds", "id")
    copy("disputes", gateway.list_disputes, lambda d: _dispute_row(d, name),
         "gateway_disputes", "id")  # fmt: skip
    copy("balance_transactions", gateway.list_balance_transactions,
         lambda b: _balance_row(b, name), "gateway_balance_transactions", "id")  # fmt: skip
    copy("payouts", gateway.list_payouts, lambda p: _payout_row(p, name),
         "gateway_settlements", "id")  # fmt: skip
    if event_rows is not None:
        counts["events_applied"] = _apply_statuses(
            con,
            name,
            _status_rows((e["id"], e["type"], e["object_id"], e["created_at"]) for e in event_rows),
        )
    elif not whole:
        try:
            counts["events_applied"] = _apply_events(gateway, name, con, cursors)
        except Unsupported:
            counts["events_applied"] = 0  # events arrive only as webhooks for this gateway
    _apply_fees(con, name)
    set_cursor(con, f"gateway:{name}", cursors)
    return counts


QUARANTINE_DDL = (
    "create table if not exists raw.quarantine_gateway_objects (gateway varchar, "
    "kind varchar, object_id varchar, field varchar, reason varchar, raw_json varchar)"
)


def _rows_or_quarantine(con, name: str, kind: str, items: list, to_row) -> list[dict]:  # type: ignore[no-untyped-def]
    """Normalized rows; an object that cannot be normalized goes to
    raw.quarantine_gateway_objects with the field and the reason, and the rest still land
    (one bad object must not stop a gateway's ingestion for good)."""
    rows, bad = [], []
    for item in items:
        try:
            rows.append(to_row(item))
        except NormalizationError as exc:
            body = (
                json.dumps(scrub(item), sort_keys=True, default=str)
                if isinstance(item, dict)
                else repr(item)
            )
            bad.append((name, kind, str(exc.object_id or ""), exc.field, str(exc), body))
    if bad:
        log.warning("gateway %s: %d %s quarantined, first: %s", name, len(bad), kind, bad[0][4])
        con.execute(QUARANTINE_DDL)
        con.executemany("insert into raw.quarantine_gateway_objects values (?, ?, ?, ?, ?, ?)", bad)
    return rows


def _listing(gateway: ObjectListing, kind: str) -> Callable[[str | None, int], Page[dict]]:
    return lambda cursor, limit: gateway.list_objects(kind, cursor, limit)


def _refund_row(r: Refund, gateway: str) -> dict[str, Any]:
    return {"id": r.gateway_refund_id, "gateway": gateway, "created_at": _utc(r.created_at),
            "status": r.status, "amount_minor": int(r.amount_minor), "currency": r.currency.upper(),
            "payment_id": r.gateway_payment_id, "reason": None}  # fmt: skip


def _dispute_row(d: Dispute, gateway: str) -> dict[str, Any]:
    return {"id": d.gateway_dispute_id, "gateway": gateway, "created_at": _utc(d.created_at),
            "status": d.status, "amount_minor": int(d.amount_minor), "currency": d.currency.upper(),
            "payment_id": d.gateway_payment_id, "reason": d.reason}  # fmt: skip


def _balance_row(b: BalanceTransaction, gateway: str) -> dict[str, Any]:
    return {"id": b.gateway_txn_id, "gateway": gateway, "source_id": b.source_id, "kind": b.kind,
            "amount_minor": int(b.amount_minor), "fee_minor": int(b.fee_minor),
            "fee_tax_minor": int(b.fee_tax_minor), "net_minor": int(b.net_minor),
            "currency": b.currency.upper(), "created_at": _utc(b.created_at),
            "available_on": _utc(b.available_on)}  # fmt: skip


def _payout_row(p: Payout, gateway: str) -> dict[str, Any]:
    return {"id": p.gateway_payout_id, "gateway": gateway, "created_at": _utc(p.arrival_at),
            "status": p.status, "amount_minor": int(p.amount_minor), "fee_minor": int(p.fee_minor),
            "tax_minor": int(p.fee_tax_minor), "currency": p.currency.upper(), "utr": p.utr}  # fmt: skip


PAYMENT_EVENT_STATUS = {
    "payment_intent.succeeded": "succeeded",
    "payment_intent.payment_failed": "failed",
    "payment_intent.processing": "pending",
    "payment_intent.requires_action": "failed",
}


def _status_rows(events) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """(event id, type, object id, created) -> the payment status each event implies."""
    rows = []
    for event_id, kind, object_id, created in events:
        status = PAYMENT_EVENT_STATUS.get(kind)
        if status and object_id:
            rows.append({"charge_id": object_id, "status": status,
                         "event_at": _utc(created), "event_id": event_id})  # fmt: skip
    return rows


def _apply_events(
    gateway: Gateway, name: str, con: duckdb.DuckDBPyConnection, cursors: dict
) -> int:
    rows: list[dict[str, Any]] = []
    for items, cursor in _pages(gateway.list_events, cursors.get("events")):
        for ev in items:
            assert isinstance(ev, GatewayEvent)
            rows += _status_rows([(ev.event_id, ev.type, ev.object_id, ev.created_at)])
        cursors["events"] = cursor
    return _apply_statuses(con, name, rows)


def _apply_statuses(con: duckdb.DuckDBPyConnection, name: str, rows: list[dict]) -> int:
    if not rows:
        return 0
    events = pd.DataFrame(rows)
    con.register("_events", events)
    try:
        # The newest event per payment wins, whatever order the events were delivered in.
        con.execute(
            """
            update raw.gateway_charges as c
            set status = e.status
            from (
                select charge_id, arg_max(status, event_at) as status from _events group by charge_id
            ) as e
            where c.charge_id = e.charge_id and c.gateway = ?
            """,
            [name],
        )
    finally:
        con.unregister("_events")
    return len(events)


def _apply_fees(con: duckdb.DuckDBPyConnection, name: str) -> None:
    exists = con.execute(
        "select count(*) from information_schema.tables where table_schema = 'raw' "
        "and table_name in ('gateway_balance_transactions', 'gateway_charges')"
    ).fetchall()[0][0]
    if exists < 2:
        return
    con.execute(
        """
        update raw.gateway_charges as c
        set fee_minor = b.fee_minor, fee_tax_minor = b.fee_tax_minor,
            balance_transaction_id = b.id, settled_at = b.available_on
        from raw.gateway_balance_transactions as b
        where b.source_id = coalesce(c.gateway_charge_id, c.charge_id) and b.kind = 'charge'
          and c.gateway = ? and b.gateway = ?
        """,
        [name, name],
    )
