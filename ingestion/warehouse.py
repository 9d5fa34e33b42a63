"""The DuckDB warehouse: the one place that opens it (`connect`, `reading`), and loading
DataFrames into it idempotently (upsert by key). Everything else that reads or writes the
warehouse, or reads Parquet through DuckDB, connects through here.

When the marts are built on Spark (the `spark` dbt target), the DuckDB file keeps what the
Python assets write (`raw`, `ml`) and Spark's tables are Parquet folders under its
warehouse directory (``<schema>.db/<table>/``). A read-only `connect` given that directory
(``tables_dir``) is the same reader for both: an in-memory database whose views show the
file's tables and, over them, Spark's, under the same ``schema.table`` names, so every
query of the ML assets, the CLI and the notebooks runs unchanged on either target."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd

_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


def _ident(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"not a safe SQL identifier: {name!r}")
    return name


def connect(
    path: Path | str | None = None,
    *,
    read_only: bool = False,
    config: dict | None = None,
    tables_dir: Path | str | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open the warehouse file (read-write: creating its parent folder), or with no path an
    in-memory database (to read Parquet files). ``config``: DuckDB settings (threads, memory).
    ``tables_dir`` (read-only only): Spark's warehouse directory, whose tables are shown over
    the file's (see the module doc)."""
    if tables_dir is not None:
        if not read_only:
            raise ValueError("Spark's tables are read-only here: connect with read_only=True")
        return _overlay(path, Path(tables_dir), config)
    if path is None:
        return duckdb.connect(config=config or {})
    if not read_only:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    return duckdb.connect(str(path), read_only=read_only, config=config or {})


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def spark_tables(tables_dir: Path) -> dict[tuple[str, str], Path]:
    """(schema, table) -> folder of each table Spark has written under ``tables_dir``."""
    found = {}
    for folder in sorted(Path(tables_dir).glob("*.db/*")):
        if folder.is_dir() and next(folder.glob("*.parquet"), None) is not None:
            schema = folder.parent.name.removesuffix(".db")
            if _IDENT.match(schema) and _IDENT.match(folder.name):
                found[(schema, folder.name)] = folder
    return found


def _overlay(
    path: Path | str | None, tables_dir: Path, config: dict | None
) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config=config or {})
    try:
        views: dict[tuple[str, str], str] = {}
        if path is not None and Path(path).exists():
            con.execute(f"attach {_quoted(str(path))} as warehouse (read_only)")
            for schema, table in con.execute(
                "select schema_name, table_name from duckdb_tables() "
                "where database_name = 'warehouse' union all "
                "select schema_name, view_name from duckdb_views() "
                "where database_name = 'warehouse' and not internal"
            ).fetchall():
                if _IDENT.match(schema) and _IDENT.match(table):
                    views[(schema, table)] = f"select * from warehouse.{schema}.{table}"
        for (schema, table), folder in spark_tables(tables_dir).items():
            views[(schema, table)] = (
                f"select * from read_parquet({_quoted(str(folder / '*.parquet'))})"
            )
        for schema in sorted({s for s, _ in views}):
            con.execute(f"create schema if not exists memory.{schema}")
        for (schema, table), select in views.items():
            con.execute(f"create view memory.{schema}.{table} as {select}")
        con.execute("use memory")
    except Exception:
        con.close()
        raise
    return con


@contextmanager
def reading(path: Path | str) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection, closed on exit: while it is open no other process can write
    the file (DuckDB's file lock), so the file can also be copied consistently. Fails at once
    if a writer has it."""
    con = connect(path, read_only=True)
    try:
        yield con
    finally:
        con.close()


def upsert_dataframe(
    con: duckdb.DuckDBPyConnection,
    schema: str,
    table: str,
    df: pd.DataFrame,
    key: str | Sequence[str],
) -> int:
    """Insert rows of ``df`` into ``schema.table``, replacing rows with the same ``key`` (a
    column, or several forming a composite key).

    Creates the table from the frame's schema on first use. Returns the number of rows
    written. Re-running with the same frame leaves the table unchanged (no duplicates).
    """
    keys = [key] if isinstance(key, str) else list(key)
    if not keys:
        raise ValueError(f"no key columns given for {schema}.{table}")
    schema, table = _ident(schema), _ident(table)
    keys = [_ident(k) for k in keys]
    missing = [k for k in keys if k not in df.columns]
    if missing:
        raise ValueError(f"key columns {missing} not in frame columns {list(df.columns)}")
    dupes = df.duplicated(subset=keys)
    if dupes.any():
        sample = df.loc[dupes, keys].head(3).to_records(index=False).tolist()
        shown = [r[0] for r in sample] if len(keys) == 1 else sample
        raise ValueError(
            f"duplicate {', '.join(keys)} values in batch for {schema}.{table}: {shown}"
        )
    con.execute(f"create schema if not exists {schema}")
    con.register("_batch", df)
    match = " and ".join(f"_batch.{k} = {schema}.{table}.{k}" for k in keys)
    try:
        con.execute(f"create table if not exists {schema}.{table} as select * from _batch limit 0")
        con.execute("begin")
        con.execute(
            f"delete from {schema}.{table} where exists (select 1 from _batch where {match})"
        )
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
