"""Gapless document numbers per financial year, allocated inside the caller's transaction."""

from __future__ import annotations

import re

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from billing_jobs.errors import ValidationError
from billing_jobs.ledger import schema as s

NUMBER_RE = re.compile(r"[A-Za-z0-9/-]{1,16}")


def format_number(series: str, fy: str, n: int) -> str:
    """E.g. INV/2526/000123: at most 16 characters of A-Z a-z 0-9 - / (GST rule 46)."""
    number = f"{series}/{fy}/{n:06d}"
    if not NUMBER_RE.fullmatch(number):
        raise ValidationError(f"document number {number!r} breaks the 16-character GST limit")
    return number


def allocate_numbers(conn: Connection, series: str, fy: str, count: int) -> list[str]:
    """Reserve `count` consecutive numbers. The sequence row is locked (FOR UPDATE on
    Postgres; SQLite already holds its write lock via BEGIN IMMEDIATE) until the caller's
    transaction ends, so numbers are used exactly when the documents are committed."""
    if count <= 0:
        return []
    seq = s.invoice_sequences
    ins = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(
        ins(seq)
        .values(series=series, financial_year=fy, last_value=0)
        .on_conflict_do_nothing(index_elements=["series", "financial_year"])
    )
    last = conn.execute(
        select(seq.c.last_value)
        .where(seq.c.series == series, seq.c.financial_year == fy)
        .with_for_update()
    ).scalar_one()
    conn.execute(
        update(seq)
        .where(seq.c.series == series, seq.c.financial_year == fy)
        .values(last_value=last + count)
    )
    return [format_number(series, fy, n) for n in range(last + 1, last + count + 1)]
