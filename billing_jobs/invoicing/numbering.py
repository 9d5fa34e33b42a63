"""Gapless document numbers per financial year, allocated inside the caller's transaction."""

from __future__ import annotations

import re

from sqlalchemy import Connection

from billing_jobs.errors import ValidationError
from billing_jobs.ledger.rawsql import ph

NUMBER_RE = re.compile(r"[A-Za-z0-9/-]{1,16}")


def format_number(series: str, fy: str, n: int) -> str:
    """E.g. INV/2526/000123: at most 16 characters of A-Z a-z 0-9 - / (GST rule 46)."""
    number = f"{series}/{fy}/{n:06d}"
    if not NUMBER_RE.fullmatch(number):
        raise ValidationError(f"document number {number!r} breaks the 16-character GST limit")
    return number


def _upsert_sql(p: str) -> str:
    # One round trip: create the sequence row or bump it, and read the new last value back.
    return (
        "INSERT INTO invoice_sequences (series, financial_year, last_value) "
        f"VALUES ({p}, {p}, {p}) ON CONFLICT (series, financial_year) "
        "DO UPDATE SET last_value = invoice_sequences.last_value + excluded.last_value "
        "RETURNING last_value"
    )


_SQL = {"?": _upsert_sql("?"), "%s": _upsert_sql("%s")}


def allocate_numbers(conn: Connection, series: str, fy: str, count: int) -> list[str]:
    """Reserve `count` consecutive numbers. The upsert locks the sequence row (PostgreSQL
    holds the row lock of INSERT ... ON CONFLICT DO UPDATE; SQLite already holds its write
    lock via BEGIN IMMEDIATE) until the caller's transaction ends, so numbers are used
    exactly when the documents are committed and a rollback returns them."""
    if count <= 0:
        return []
    if not conn.in_transaction():
        conn.begin()  # what SQLAlchemy's autobegin would do before its first statement
    cur = conn.connection.cursor()  # plain DBAPI: SQLAlchemy's overhead exceeded the query
    try:
        cur.execute(_SQL[ph(conn)], (series, fy, count))
        (last,) = cur.fetchone()
    finally:
        cur.close()
    first = last - count + 1
    return [format_number(series, fy, n) for n in range(first, last + 1)]
