"""Copying the billing ledger's tables into the warehouse as ``raw.ledger_<table>``.

Tables with an ``updated_at`` column are copied incrementally from a timestamp cursor;
append-only tables (events, lines) incrementally from their integer id; invoice documents and
mail deliveries by key (see KEYED); every other table (mutable rows without an update stamp)
is replaced whole, which is always correct. Rows are upserted by primary key (one column or
several), so a re-run never duplicates anything. Some tables (NOT_COPIED) and columns
(EXCLUDED_COLUMNS) never leave the ledger.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import duckdb
import pandas as pd
from sqlalchemy import Column, Engine, MetaData, Table, select

from ingestion.warehouse import upsert_dataframe

CURSOR_COLUMNS = ("updated_at",)
# Rows of these ledger tables are never updated once written.
APPEND_ONLY = frozenset(
    {
        "subscription_events",
        "invoice_lines",
        "credit_note_lines",
        "customer_balance_transactions",
        "payments_dunning_notifications",
        "payments_refunds",
    }
)
# Ledger tables that stay in the ledger, and why. Every other table is copied (a test holds the
# ingestion asset's list to this).
NOT_COPIED: dict[str, str] = {
    "idempotency_records": "request hashes and the stored responses replayed to retried API "
    "calls: a cache of answers, not business facts",
    "invoice_sequences": "the state of the invoice-number allocator; the numbers themselves "
    "arrive with invoices and credit notes",
    "payments_landing_cursors": "where the gateway-event reader stopped in the landing zone: "
    "bookkeeping of ingestion itself",
    "document_delivery_attachments": "the bytes of attachments queued with a mail; documents are "
    "described by invoice_documents",
    "document_delivery_files": "paths and hashes of files the mail sender attaches at send time; "
    "document_deliveries.document_number already names the document",
    "credit_note_documents": "paths and hashes of rendered credit-note PDFs; the credit notes "
    "and their lines are copied, and the files live in the document store",
    "payments_quarantined_events": "gateway events no payment matched, kept with their raw "
    "bodies for an operator to replay or discard: an operations queue, not business facts",
    "subscription_charges": "proration bookkeeping (what each item in force was charged, to "
    "credit unused time once); what customers were charged and credited arrives with invoice "
    "lines and credit-note lines",
    "customer_erasures": "when each erased customer was pseudonymized and which fields: a "
    "compliance record; ingestion reads it from the ledger to scrub the raw gateway copies",
    "ops_alerts": "alerts about failed job runs, for operators where they work; their messages "
    "carry error details, not business facts",
}


@dataclass(frozen=True)
class Keyed:
    """Copy by key instead of a cursor: rows whose key the warehouse lacks, plus rows the
    warehouse holds in a still-open state (``open_column`` in ``open_values``), re-read because
    they may have changed. Rows in any other state are final and never read again."""

    open_column: str | None = None
    open_values: tuple[str, ...] = ()


# No cursor fits these: documents reach the table in commit order, not invoice-id order (a
# draft finalized late, a pool chunk committing early), and outbox ids are reserved before
# their transaction commits. Keys present in the ledger but not the warehouse are exact.
KEYED: dict[str, Keyed] = {
    "invoice_documents": Keyed(),  # append-only: one row per rendered invoice
    # A delivery changes (status, attempts, sent_at, last_error) until it is sent, failed or
    # unknown; a resend is a new row, so those three states are final.
    "document_deliveries": Keyed("status", ("queued", "sending")),
}
# Personal data and secrets stay in the ledger: message bodies and claim tokens, raw webhook
# bodies (whatever the gateway sent, kept only to retry or inspect), and gateway tokens (a
# saved method can be charged with one; the warehouse needs its kind and label, not the token).
EXCLUDED_COLUMNS: dict[str, frozenset[str]] = {
    "document_deliveries": frozenset({"text_body", "html_body", "claim_token"}),
    "payments_gateway_events": frozenset({"body"}),
    "payment_methods": frozenset({"gateway_token"}),
    # The charge in flight (cleared when it is finalized) and the token of a hard-declined
    # method: collection's own bookkeeping, and a token that can be charged.
    "payments_collection_state": frozenset(
        {"claim_attempt_id", "claimed_at", "declined_token", "declined_code"}
    ),
}
# Keys per IN (...) list when reading keyed rows (below every backend's parameter limit).
KEY_BATCH = 900


@dataclass(frozen=True)
class TableCopy:
    table: str
    rows: int
    mode: str  # "incremental", "append", "keyed" or "full"
    cursor: str | None


class LedgerCopyError(RuntimeError):
    """A ledger table cannot be copied (no primary key, a composite key where one id is
    needed, unknown table)."""


def _cursor_column(table: Table) -> str | None:
    for name in CURSOR_COLUMNS:
        if name in table.c:
            return name
    return None


def _key_columns(table: Table) -> list[str]:
    """The primary key the copy upserts by (one column or several)."""
    keys = [c.name for c in table.primary_key.columns]
    if not keys:
        raise LedgerCopyError(f"ledger table {table.name!r} has no primary key to upsert by")
    return keys


def _key_column(table: Table, why: str) -> str:
    """The single-column primary key that `why` (reading by id or by key) needs."""
    keys = _key_columns(table)
    if len(keys) != 1:
        raise LedgerCopyError(
            f"ledger table {table.name!r} needs a single-column primary key for {why}, has {keys}"
        )
    return keys[0]


def _columns(table: Table) -> list[Column]:
    excluded = EXCLUDED_COLUMNS.get(table.name, frozenset())
    return [c for c in table.columns if c.name not in excluded]


def _frame(engine: Engine, table: Table, cursor_col: str | None, since: str | None) -> pd.DataFrame:
    stmt = select(*_columns(table))
    if cursor_col and since:
        # >= (not >): rows sharing the cursor instant are re-read; the upsert makes that harmless.
        stmt = stmt.where(table.c[cursor_col] >= datetime.fromisoformat(since))
    with engine.connect() as conn:
        result = conn.execute(stmt)
        df = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    _int64(table, df)
    return df


def _int64(table: Table, df: pd.DataFrame) -> None:
    """Give every column its ledger type, so DuckDB never infers NULL from an empty batch."""
    for col in table.columns:
        if col.name not in df:
            continue
        try:
            py = col.type.python_type
        except NotImplementedError:
            py = str
        if py is int:
            # Integers (money in minor units) stay int64 even when a column has NULLs.
            df[col.name] = df[col.name].astype("Int64")
        elif py is bool:
            df[col.name] = df[col.name].astype("boolean")
        elif py is datetime:
            df[col.name] = pd.to_datetime(df[col.name], utc=True).dt.tz_localize(None)
        elif df[col.name].isna().all() or py is str:
            df[col.name] = df[col.name].astype("string")


def _append_frame(engine: Engine, table: Table, key: str, since: str | None) -> pd.DataFrame:
    stmt = select(*_columns(table))
    if since is not None:
        stmt = stmt.where(table.c[key] > int(since))
    with engine.connect() as conn:
        result = conn.execute(stmt.order_by(table.c[key]))
        df = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    _int64(table, df)
    return df


def _keyed_frame(
    engine: Engine, con: duckdb.DuckDBPyConnection, table: Table, key: str, target: str, rule: Keyed
) -> pd.DataFrame:
    """Rows the warehouse lacks or holds open (see `Keyed`)."""
    with engine.connect() as conn:
        ledger_keys = set(conn.execute(select(table.c[key])).scalars())
    have: set[object] = set()
    open_keys: set[object] = set()
    if _exists(con, target):
        have = {r[0] for r in con.execute(f"select {key} from raw.{target}").fetchall()}
        if rule.open_column:
            marks = ", ".join("?" for _ in rule.open_values)
            open_keys = {
                r[0]
                for r in con.execute(
                    f"select {key} from raw.{target} where {rule.open_column} in ({marks})",
                    list(rule.open_values),
                ).fetchall()
            }
    wanted = sorted((ledger_keys - have) | (open_keys & ledger_keys))
    return _rows_by_key(engine, table, key, wanted)


def _rows_by_key(engine: Engine, table: Table, key: str, keys: Sequence[object]) -> pd.DataFrame:
    cols = _columns(table)
    frames = []
    with engine.connect() as conn:
        for i in range(0, len(keys), KEY_BATCH):
            batch = keys[i : i + KEY_BATCH]
            result = conn.execute(select(*cols).where(table.c[key].in_(batch)))
            frames.append(pd.DataFrame(result.fetchall(), columns=list(result.keys())))
    if frames:
        df = pd.concat(frames, ignore_index=True).sort_values(key, ignore_index=True)
    else:
        df = pd.DataFrame({c.name: [] for c in cols})
    _int64(table, df)
    return df


def _create_empty(con: duckdb.DuckDBPyConnection, target: str, df: pd.DataFrame) -> None:
    con.register("_empty", df)
    try:
        con.execute(f"create table raw.{target} as select * from _empty")
    finally:
        con.unregister("_empty")


def copy_ledger_tables(
    engine: Engine,
    con: duckdb.DuckDBPyConnection,
    tables: Iterable[str] | None = None,
    cursors: Mapping[str, str] | None = None,
    metadata: MetaData | None = None,
    append_only: frozenset[str] = APPEND_ONLY,
) -> list[TableCopy]:
    """Copy ledger tables into ``raw.ledger_<table>``; returns per-table counts and new cursors.

    ``cursors`` maps table name to the last position copied (an ISO timestamp for tables with
    ``updated_at``, the last id for append-only tables).
    """
    meta = metadata
    if meta is None:
        meta = MetaData()
        meta.reflect(bind=engine)
    wanted = list(tables) if tables is not None else sorted(meta.tables)
    unknown = [t for t in wanted if t not in meta.tables]
    if unknown:
        raise LedgerCopyError(f"unknown ledger tables {unknown}; known: {sorted(meta.tables)}")
    cursors = dict(cursors or {})
    out: list[TableCopy] = []
    con.execute("create schema if not exists raw")
    for name in wanted:
        table = meta.tables[name]
        target = f"ledger_{name}"
        cursor_col = _cursor_column(table)
        if cursor_col is None and name in KEYED:
            key = _key_column(table, "a keyed copy")
            df = _keyed_frame(engine, con, table, key, target, KEYED[name])
            if not df.empty:
                upsert_dataframe(con, "raw", target, df, key=key)
            elif not _exists(con, target):
                _create_empty(con, target, df)
            out.append(TableCopy(name, len(df), "keyed", None))
            continue
        if cursor_col is None and name in append_only:
            key = _key_column(table, "an append-only copy")
            since = cursors.get(name) if _exists(con, target) else None
            df = _append_frame(engine, table, key, since)
            if not df.empty:
                upsert_dataframe(con, "raw", target, df, key=key)
            elif not _exists(con, target):
                _create_empty(con, target, df)
            newest = str(int(df[key].max())) if not df.empty else since
            out.append(TableCopy(name, len(df), "append", newest))
            continue
        if cursor_col is None:
            df = _frame(engine, table, None, None)
            con.register("_full", df)
            try:
                con.execute(f"create or replace table raw.{target} as select * from _full")
            finally:
                con.unregister("_full")
            out.append(TableCopy(name, len(df), "full", None))
            continue
        keys = _key_columns(table)
        df = _frame(engine, table, cursor_col, cursors.get(name))
        if not df.empty:
            upsert_dataframe(con, "raw", target, df, key=keys)
        elif not _exists(con, target):
            _create_empty(con, target, df)
        newest = df[cursor_col].max() if not df.empty else None
        cursor = pd.Timestamp(newest).isoformat() if newest is not None else cursors.get(name)
        out.append(TableCopy(name, len(df), "incremental", cursor))
    return out


def _exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    # fetchall: DuckDB refuses new work on a connection with an unfinished result.
    rows = con.execute(
        "select count(*) from information_schema.tables where table_schema = 'raw' "
        "and table_name = ?",
        [table],
    ).fetchall()
    return bool(rows and rows[0][0])
