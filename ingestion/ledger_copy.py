"""Copying the billing ledger's tables into the warehouse as ``raw.ledger_<table>``.

Tables with an ``updated_at`` (or ``created_at`` for append-only tables) column are copied
incrementally from a cursor; the rest are small reference tables and are replaced whole.
Rows are upserted by primary key, so a re-run never duplicates anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

import duckdb
import pandas as pd
from sqlalchemy import Engine, MetaData, Table, select

from ingestion.warehouse import upsert_dataframe

CURSOR_COLUMNS = ("updated_at", "created_at")


@dataclass(frozen=True)
class TableCopy:
    table: str
    rows: int
    mode: str  # "incremental" or "full"
    cursor: str | None


class LedgerCopyError(RuntimeError):
    """A ledger table cannot be copied (no primary key, composite key, unknown table)."""


def _cursor_column(table: Table) -> str | None:
    for name in CURSOR_COLUMNS:
        if name in table.c:
            return name
    return None


def _key_column(table: Table) -> str:
    keys = [c.name for c in table.primary_key.columns]
    if len(keys) != 1:
        raise LedgerCopyError(
            f"ledger table {table.name!r} needs a single-column primary key to be upserted, "
            f"has {keys or 'none'}"
        )
    return keys[0]


def _frame(engine: Engine, table: Table, cursor_col: str | None, since: str | None) -> pd.DataFrame:
    stmt = select(table)
    if cursor_col and since:
        # >= (not >): rows sharing the cursor instant are re-read; the upsert makes that harmless.
        stmt = stmt.where(table.c[cursor_col] >= datetime.fromisoformat(since))
    with engine.connect() as conn:
        result = conn.execute(stmt)
        df = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    for col in table.columns:
        # Integers (money in minor units) stay int64 even when a column has NULLs.
        if col.type.python_type is int and col.name in df:
            df[col.name] = df[col.name].astype("Int64")
    return df


def copy_ledger_tables(
    engine: Engine,
    con: duckdb.DuckDBPyConnection,
    tables: Iterable[str] | None = None,
    cursors: Mapping[str, str] | None = None,
    metadata: MetaData | None = None,
) -> list[TableCopy]:
    """Copy ledger tables into ``raw.ledger_<table>``; returns per-table counts and new cursors.

    ``cursors`` maps table name to the ISO timestamp of the newest row already copied.
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
        key = _key_column(table)
        cursor_col = _cursor_column(table)
        df = _frame(engine, table, cursor_col, cursors.get(name))
        target = f"ledger_{name}"
        if cursor_col is None:
            con.register("_full", df)
            con.execute(f"create or replace table raw.{target} as select * from _full")
            con.unregister("_full")
            out.append(TableCopy(name, len(df), "full", None))
            continue
        if not df.empty:
            upsert_dataframe(con, "raw", target, df, key=key)
        elif not _exists(con, target):
            con.register("_empty", df)
            con.execute(f"create table raw.{target} as select * from _empty")
            con.unregister("_empty")
        newest = df[cursor_col].max() if not df.empty else None
        cursor = pd.Timestamp(newest).isoformat() if newest is not None else cursors.get(name)
        out.append(TableCopy(name, len(df), "incremental", cursor))
    return out


def _exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    row = con.execute(
        "select count(*) from information_schema.tables where table_schema = 'raw' "
        "and table_name = ?",
        [table],
    ).fetchone()
    return bool(row and row[0])
