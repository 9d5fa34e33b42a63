"""The raw tables as Parquet, for a warehouse engine other than the DuckDB file (the `spark`
dbt target): each raw table an ingestion asset writes is published as one Parquet file,
``<root>/<table>/part-0.parquet``, holding exactly the columns and types of the raw contract
(the `raw` source of the dbt project), so the engine reading it needs no loader of its own.
The file is written beside the old one under a hidden name, then renamed over it: a reader
sees the previous table or the new one, never half of one (Spark and DuckDB skip files whose
names start with a dot)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

import duckdb

from ingestion.warehouse import _ident, _quoted

PART = "part-0.parquet"
_TYPES = {"varchar", "bigint", "integer", "boolean", "timestamp", "date", "double"}

Contract = Mapping[str, Mapping[str, str]]
"""table -> column -> declared type, in declaration order."""


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    rows = con.execute(
        "select column_name from information_schema.columns "
        "where table_schema = 'raw' and table_name = ?",
        [table],
    ).fetchall()
    return {r[0] for r in rows}


def publish(
    con: duckdb.DuckDBPyConnection, root: Path, contract: Contract, tables: Iterable[str]
) -> list[str]:
    """Publish ``raw.<table>`` for each of ``tables`` that the contract declares and the
    warehouse holds; returns the tables written. A declared column the table lacks is
    written as nulls."""
    written = []
    # Instants are written as UTC wall-clock timestamps (the contract type), whatever the
    # machine's zone; a cursor keeps the setting off the caller's connection.
    cur = con.cursor()
    try:
        cur.execute("set TimeZone = 'UTC'")
        for table in tables:
            if _publish_one(cur, Path(root), table, contract.get(table)):
                written.append(table)
    finally:
        cur.close()
    return written


def _publish_one(
    cur: duckdb.DuckDBPyConnection, root: Path, table: str, declared: Mapping[str, str] | None
) -> bool:
    have = _columns(cur, _ident(table))
    if not declared or not have:
        return False
    select = []
    for column, kind in declared.items():
        if kind not in _TYPES:
            raise ValueError(f"raw.{table}.{column}: unsupported contract type {kind!r}")
        source = f'"{_ident(column)}"' if _ident(column) in have else "null"
        select.append(f'cast({source} as {kind}) as "{column}"')
    folder = root / table
    folder.mkdir(parents=True, exist_ok=True)
    temp = folder / f".{uuid.uuid4().hex}.parquet"
    try:
        cur.execute(
            f"copy (select {', '.join(select)} from raw.{table}) to {_quoted(str(temp))} "
            "(format parquet)"
        )
        os.replace(temp, folder / PART)
    finally:
        temp.unlink(missing_ok=True)
    return True
