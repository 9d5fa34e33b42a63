"""Loading the landing zone (webhook journal, bank settlement files) into ``raw`` tables.

Each load validates the batch with the data-quality suite: valid rows are upserted, invalid
rows go to ``raw.quarantine_<table>`` with the reason, and a cursor kept in the warehouse makes
the next load read only what is new. Re-running a load never duplicates a row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd

from ingestion.bank_files import BankFileError, parse_bank_settlement_csv
from ingestion.quality import (
    BANK_SETTLEMENTS,
    REASON_COLUMN,
    WEBHOOK_EVENTS,
    CheckResult,
    validate_table,
)
from ingestion.warehouse import upsert_dataframe
from ingestion.webhooks.journal import iter_landed_events


@dataclass
class LoadReport:
    table: str
    loaded: int = 0
    quarantined: int = 0
    checks: list[CheckResult] = field(default_factory=list)
    cursor: object = None
    files: int = 0


def get_cursor(con: duckdb.DuckDBPyConnection, name: str) -> object:
    con.execute("create schema if not exists raw")
    con.execute("create table if not exists raw._cursors (name varchar primary key, value varchar)")
    rows = con.execute("select value from raw._cursors where name = ?", [name]).fetchall()
    row = rows[0] if rows else None
    return json.loads(row[0]) if row else None


def set_cursor(con: duckdb.DuckDBPyConnection, name: str, value: object) -> None:
    get_cursor(con, name)
    con.execute(
        "insert or replace into raw._cursors values (?, ?)",
        [name, json.dumps(value, sort_keys=True)],
    )


def _quarantine(
    con: duckdb.DuckDBPyConnection, table: str, bad: pd.DataFrame, as_of: datetime
) -> int:
    if bad.empty:
        return 0
    frame = bad.astype("string").assign(quarantined_at=as_of.isoformat())
    con.execute("create schema if not exists raw")
    con.register("_bad", frame)
    try:
        con.execute(
            f"create table if not exists raw.quarantine_{table} as select * from _bad limit 0"
        )
        existing = {
            r[0]
            for r in con.execute(
                "select column_name from information_schema.columns "
                "where table_schema = 'raw' and table_name = ?",
                [f"quarantine_{table}"],
            ).fetchall()
        }
        for column in frame.columns:
            if column not in existing:  # batches differ in shape (parse rejects vs bad rows)
                con.execute(f'alter table raw.quarantine_{table} add column "{column}" varchar')
        con.execute(f"insert into raw.quarantine_{table} by name select * from _bad")
    finally:
        con.unregister("_bad")
    return len(frame)


# Bank lines: same checks as the suite, but a payment may legitimately appear twice (the bank
# credited it twice); uniqueness is per file line.
BANK_LINES = replace(BANK_SETTLEMENTS, unique=(("file", "line_number"),))

RAW_LANDING_DDL = {
    "webhook_events": "received_at timestamp, source varchar, event_id varchar, "
    "event_type varchar, signature_verified boolean, body varchar, event_key varchar",
    "bank_settlements": "line_number bigint, settlement_id varchar, utr varchar, "
    "payment_id varchar, gross_minor bigint, fee_minor bigint, tax_minor bigint, "
    "net_minor bigint, currency varchar, settled_at timestamp, file varchar, "
    "bank_row_id varchar",
}


def ensure_raw_landing_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The raw contract: these tables exist (maybe empty) so staging always builds."""
    con.execute("create schema if not exists raw")
    for table, columns in RAW_LANDING_DDL.items():
        con.execute(f"create table if not exists raw.{table} ({columns})")


def load_webhook_events(
    landing_dir: Path, con: duckdb.DuckDBPyConnection, as_of: datetime
) -> LoadReport:
    """Append newly landed webhook events to ``raw.webhook_events`` (keyed by source:event id)."""
    report = LoadReport("webhook_events")
    ensure_raw_landing_tables(con)
    cursor = get_cursor(con, "webhook_events")
    events, new_cursor = iter_landed_events(landing_dir, cursor)
    report.cursor = new_cursor
    if events:
        df = pd.DataFrame([e.as_dict() for e in events]).drop(columns=["journal_file", "offset"])
        df["received_at"] = pd.to_datetime(df["received_at"], utc=True)
        result = validate_table(df, WEBHOOK_EVENTS, as_of=as_of)
        report.checks = result.checks
        valid = result.valid_df.copy()
        if not valid.empty:
            valid["event_key"] = valid["source"] + ":" + valid["event_id"]
            valid["received_at"] = valid["received_at"].dt.tz_convert("UTC").dt.tz_localize(None)
            report.loaded = upsert_dataframe(con, "raw", "webhook_events", valid, key="event_key")
        report.quarantined = _quarantine(con, "webhook_events", result.quarantined_df, as_of)
    set_cursor(con, "webhook_events", new_cursor)
    return report


def load_bank_settlements(
    bank_dir: Path, con: duckdb.DuckDBPyConnection, as_of: datetime
) -> LoadReport:
    """Load every new bank settlement CSV under ``bank_dir`` (files already loaded are skipped)."""
    report = LoadReport("bank_settlements")
    ensure_raw_landing_tables(con)
    done: list[str] = list(get_cursor(con, "bank_settlements") or [])
    files = (
        sorted(p for p in bank_dir.glob("*.csv") if p.name not in done) if bank_dir.is_dir() else []
    )
    rows: list[dict] = []
    rejects: list[dict] = []
    for path in files:
        try:
            # Money that moved is kept for reconciliation: double credits and short payments.
            parsed, rejected = parse_bank_settlement_csv(
                path, keep_duplicates=True, check_net=False
            )
        except BankFileError as exc:
            rejects.append(
                {"file": path.name, "line_number": 0, REASON_COLUMN: str(exc), "raw": ""}
            )
            continue
        rows += [{**r.as_dict(), "file": path.name} for r in parsed]
        rejects += [
            {"file": path.name, "line_number": r.line_number, REASON_COLUMN: r.reason, "raw": r.raw}
            for r in rejected
        ]
    report.files = len(files)
    if rows:
        df = pd.DataFrame(rows)
        df["settled_at"] = pd.to_datetime(df["settled_at"], utc=True)
        result = validate_table(df, BANK_LINES, as_of=as_of)
        report.checks = result.checks
        valid = result.valid_df.copy()
        if not valid.empty:
            # One row per file line: a payment credited twice is a real event that
            # reconciliation must see (status duplicate), so it is not collapsed here.
            valid["bank_row_id"] = valid["file"] + ":" + valid["line_number"].astype(str)
            valid["settled_at"] = valid["settled_at"].dt.tz_convert("UTC").dt.tz_localize(None)
            report.loaded = upsert_dataframe(
                con, "raw", "bank_settlements", valid, key="bank_row_id"
            )
        report.quarantined += _quarantine(con, "bank_settlements", result.quarantined_df, as_of)
    if rejects:
        report.quarantined += _quarantine(con, "bank_settlements", pd.DataFrame(rejects), as_of)
    set_cursor(con, "bank_settlements", done + [p.name for p in files])
    return report
