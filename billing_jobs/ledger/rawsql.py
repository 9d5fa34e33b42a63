"""Thin DBAPI fast path for bulk reads and writes (billing run, batched collection and
subscriptions, the simulator; SQLite and PostgreSQL).

SQLAlchemy Core per-row parameter processing dominated run time at 100k subscriptions, so
hot paths send plain tuples with executemany. Timestamps use the exact storage format of
SQLAlchemy's DateTime (naive UTC), so Core and this path read each other's rows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection


def is_sqlite(conn: Connection) -> bool:
    return conn.dialect.name == "sqlite"


def ph(conn: Connection) -> str:
    """The DBAPI placeholder of the connection's driver."""
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


@lru_cache(maxsize=1 << 16)  # billing runs reuse the same period boundaries a lot
def to_db(conn_is_sqlite: bool, value: datetime | None) -> Any:
    """Aware datetime -> stored form (naive UTC; text on SQLite)."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r} cannot be stored in the ledger")
    naive = value.astimezone(UTC).replace(tzinfo=None)
    return naive.isoformat(sep=" ", timespec="microseconds") if conn_is_sqlite else naive


@lru_cache(maxsize=1 << 16)
def from_db(value: Any) -> datetime | None:
    """Stored form -> aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def insert_many(
    conn: Connection, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """executemany INSERT of plain tuples."""
    if not rows:
        return
    p = ph(conn)
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([p] * len(columns))})"
    conn.exec_driver_sql(sql, list(rows))


def reserve_ids(conn: Connection, table: str, n: int) -> list[int]:
    """n new primary keys for `table`, usable in explicit inserts within this transaction.

    SQLite: the transaction holds the database write lock (BEGIN IMMEDIATE), so max(id)+1..
    cannot be taken by anyone else. Postgres: draw from the table's own sequence."""
    if n <= 0:
        return []
    if is_sqlite(conn):
        top = conn.exec_driver_sql(f"SELECT coalesce(max(id), 0) FROM {table}").scalar_one()
        return list(range(top + 1, top + n + 1))
    rows = conn.exec_driver_sql(
        f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, {int(n)})"
    ).all()
    return [r[0] for r in rows]


def sql_rows(conn: Connection, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Run one statement on the connection's DBAPI cursor (inside the caller's transaction);
    the rows it returns. SQLAlchemy's per-statement overhead exceeded the queries here."""
    cur = conn.connection.cursor()
    try:
        cur.execute(sql, tuple(params))
        return cur.fetchall() if cur.description else []
    finally:
        cur.close()


def sql_many(conn: Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """executemany on the DBAPI cursor; nothing for no rows."""
    if not rows:
        return
    cur = conn.connection.cursor()
    try:
        cur.executemany(sql, [tuple(r) for r in rows])
    finally:
        cur.close()


def sql_insert(
    conn: Connection, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """executemany INSERT of plain tuples (as `insert_many`, without SQLAlchemy)."""
    p = ph(conn)
    cols = ", ".join(columns)
    sql_many(conn, f"INSERT INTO {table} ({cols}) VALUES ({', '.join([p] * len(columns))})", rows)
