"""Loading the landing zone (webhook journal, bank settlement files) into ``raw`` tables.

Each load validates the batch with the data-quality suite: valid rows are upserted, invalid
rows go to ``raw.quarantine_<table>`` with the reason, and a cursor kept in the warehouse makes
the next load read only what is new. Re-running a load never duplicates a row.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd

from ingestion.bank_files import (
    BankFileError,
    BankSettlementRow,
    Reject,
    iter_bank_settlement_csv,
)
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
    rejected_files: list[str] = field(default_factory=list)


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


BANK_CHUNK_ROWS = 50_000  # rows validated and written at once: memory stays flat on big files


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _bank_files_seen(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, object]]:
    """The bank cursor: file name -> {sha256, status (loaded | rejected), reason}. Cursors of
    older releases were a list of names with no hash or status: a name with rows in
    ``raw.bank_settlements`` counts as loaded; one without was rejected whole and is retried."""
    raw = get_cursor(con, "bank_settlements")
    if isinstance(raw, dict):
        return raw
    names = list(raw or [])
    if not names:
        return {}
    with_rows = {
        r[0]
        for r in con.execute(
            "select distinct file from raw.bank_settlements where file in "
            f"({', '.join('?' for _ in names)})",
            names,
        ).fetchall()
    }
    return {n: {"sha256": None, "status": "loaded"} for n in names if n in with_rows}


def _bank_rejects(path: Path, sha: str, rejects: list[Reject]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"file": path.name, "sha256": sha, "line_number": r.line_number,
          REASON_COLUMN: r.reason, "raw": r.raw} for r in rejects]
    )  # fmt: skip


def _load_bank_chunk(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    sha: str,
    rows: list[BankSettlementRow],
    rejects: list[Reject],
    as_of: datetime,
    report: LoadReport,
) -> None:
    if rows:
        df = pd.DataFrame([{**r.as_dict(), "file": path.name} for r in rows])
        df["settled_at"] = pd.to_datetime(df["settled_at"], utc=True)
        result = validate_table(df, BANK_LINES, as_of=as_of)
        report.checks = _merge_checks(report.checks, result.checks)
        valid = result.valid_df.copy()
        if not valid.empty:
            # One row per file line: a payment credited twice is a real event that
            # reconciliation must see (status duplicate), so it is not collapsed here.
            valid["bank_row_id"] = valid["file"] + ":" + valid["line_number"].astype(str)
            valid["settled_at"] = valid["settled_at"].dt.tz_convert("UTC").dt.tz_localize(None)
            report.loaded += upsert_dataframe(
                con, "raw", "bank_settlements", valid, key="bank_row_id"
            )
        bad = result.quarantined_df.assign(sha256=sha)
        report.quarantined += _quarantine(con, "bank_settlements", bad, as_of)
    if rejects:
        bad = _bank_rejects(path, sha, rejects)
        report.quarantined += _quarantine(con, "bank_settlements", bad, as_of)


def _merge_checks(old: list[CheckResult], new: list[CheckResult]) -> list[CheckResult]:
    """Checks over several chunks of one load: a check fails if it failed on any chunk."""
    if not old:
        return list(new)
    by_name = {c.check: c for c in old}
    for check in new:
        prior = by_name.get(check.check)
        if prior is None:
            by_name[check.check] = check
        else:
            by_name[check.check] = replace(
                prior,
                success=prior.success and check.success,
                unexpected_count=prior.unexpected_count + check.unexpected_count,
            )
    return list(by_name.values())


def load_bank_settlement_file(
    path: Path, con: duckdb.DuckDBPyConnection, as_of: datetime, report: LoadReport, sha: str
) -> dict[str, object]:
    """Load one settlement file in chunks; returns its cursor entry. A file rejected whole is
    recorded as rejected with its reason and hash (and quarantined as line 0), and what an
    earlier version of it loaded stays; a file that parses replaces its earlier version."""
    # Money that moved is kept for reconciliation: double credits and short payments.
    items = iter_bank_settlement_csv(path, keep_duplicates=True, check_net=False)
    try:
        first = next(items, None)  # the header: whole-file errors surface here, before a write
    except BankFileError as exc:
        bad = _bank_rejects(path, sha, [Reject(0, str(exc), "")])
        report.quarantined += _quarantine(con, "bank_settlements", bad, as_of)
        report.rejected_files.append(path.name)
        return {"sha256": sha, "status": "rejected", "reason": str(exc)}
    con.execute("delete from raw.bank_settlements where file = ?", [path.name])
    before = (report.loaded, report.quarantined)
    rows: list[BankSettlementRow] = []
    rejects: list[Reject] = []
    for item in itertools.chain([first] if first is not None else [], items):
        (rejects if isinstance(item, Reject) else rows).append(item)  # type: ignore[arg-type]
        if len(rows) + len(rejects) >= BANK_CHUNK_ROWS:
            _load_bank_chunk(con, path, sha, rows, rejects, as_of, report)
            rows, rejects = [], []
    _load_bank_chunk(con, path, sha, rows, rejects, as_of, report)
    return {
        "sha256": sha,
        "status": "loaded",
        "lines": report.loaded - before[0],
        "quarantined": report.quarantined - before[1],
    }


def load_bank_settlements(
    bank_dir: Path, con: duckdb.DuckDBPyConnection, as_of: datetime
) -> LoadReport:
    """Load every new bank settlement CSV under ``bank_dir``: a file is skipped only when the
    same content (sha256) was handled before, so a corrected file under the name of a rejected
    one is loaded. Each file is streamed in chunks (memory stays flat on large files)."""
    report = LoadReport("bank_settlements")
    ensure_raw_landing_tables(con)
    seen = _bank_files_seen(con)
    paths = sorted(bank_dir.glob("*.csv")) if bank_dir.is_dir() else []
    for path in paths:
        sha = _sha256(path)
        prior = seen.get(path.name)
        if prior is not None and prior.get("sha256") in (sha, None):
            continue
        seen[path.name] = load_bank_settlement_file(path, con, as_of, report, sha)
        report.files += 1
        set_cursor(con, "bank_settlements", seen)  # per file: a crash repeats at most one
    report.cursor = seen
    return report
