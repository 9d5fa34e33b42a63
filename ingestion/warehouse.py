"""Loading DataFrames into the DuckDB warehouse idempotently (upsert by key)."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pandas as pd

_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


def _ident(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"not a safe SQL identifier: {name!r}")
    return name


def connect(path: Path | str) -> duckdb.DuckDBPyConnection:
    """Open the warehouse file, creating its parent folder."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return duckdb.connect(str(path))


def upsert_dataframe(
    con: duckdb.DuckDBPyConnection, schema: str, table: str, df: pd.DataFrame, key: str
) -> int:
    """Insert rows of ``df`` into ``schema.table``, replacing rows with the same ``key``.

    Creates the table from the frame's schema on first use. Returns the number of rows
    written. Re-running with the same frame leaves the table unchanged (no duplicates).
    """
    schema, table, key = _ident(schema), _ident(table), _ident(key)
    if key not in df.columns:
        raise ValueError(f"key column {key!r} not in frame columns {list(df.columns)}")
    if df[key].duplicated().any():
        dupes = df.loc[df[key].duplicated(), key].head(3).tolist()
        raise ValueError(f"duplicate {key} values in batch for {schema}.{table}: {dupes}")
    con.execute(f"create schema if not exists {schema}")
    con.register("_batch", df)
    try:
        con.execute(f"create table if not exists {schema}.{table} as select * from _batch limit 0")
        con.execute("begin")
        con.execute(f"delete from {schema}.{table} where {key} in (select {key} from _batch)")
        con.execute(f"insert into {schema}.{table} by name select * from _batch")
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    finally:
        con.unregister("_batch")
    return len(df)


def table_count(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> int:
    # fetchall: DuckDB refuses new work on a connection with an unfinished result.
    rows = con.execute(f"select count(*) from {_ident(schema)}.{_ident(table)}").fetchall()
    row = rows[0] if rows else None
    return int(row[0]) if row else 0
