"""Retention and erasure outside the ledger: landed webhook files and the warehouse's raw event
tables past their terms, and erased customers' personal data scrubbed from the raw gateway copies
(a gateway keeps its own customer object with the e-mail until it is deleted there)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from ingestion.webhooks.journal import JOURNAL_SUBDIR

# Keys of gateway JSON that carry a person's contact data, removed at any depth.
PERSONAL_KEYS = frozenset(
    {
        "email", "receipt_email", "name", "phone", "contact", "address", "shipping",
        "billing_details", "description", "vpa", "line1", "line2", "city", "postal_code",
    }
)  # fmt: skip
# raw table -> (key column, JSON column, columns naming the customer or their payments)
SCRUBBED: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "gateway_customers": ("id", "raw_json", ("paysight_customer_id", "id")),
    "gateway_charges": ("charge_id", "raw_json", ("customer_id", "gateway_customer_id")),
    "gateway_events": ("id", "raw_json", ("object_id",)),
}
# Warehouse tables whose rows expire as analytics, and their time column.
ANALYTICS_TABLES = {"gateway_events": "created_at", "webhook_events": "received_at"}


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def expired_landing_days(landing_dir: Path, cutoff: datetime) -> list[Path]:
    """Day folders of landed webhooks (<landing>/webhooks/<source>/<YYYY-MM-DD>) whose whole
    day (UTC) ended before `cutoff`; folders not named as a date are never touched."""
    root = Path(landing_dir) / JOURNAL_SUBDIR
    out = []
    for day_dir in sorted(root.glob("*/*")):
        try:
            day = date.fromisoformat(day_dir.name)
        except ValueError:
            continue
        end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
        if day_dir.is_dir() and end <= cutoff:
            out.append(day_dir)
    return out


def expire_landing_files(
    landing_dir: Path,
    cutoff: datetime,
    *,
    readers: Sequence[Mapping[str, int] | None] = (),
    dry_run: bool = False,
    on_delete: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Delete the landed webhook files of days past `cutoff` that every reader (a cursor: file
    relative to the landing dir -> bytes read) has read to the end; a day with a file some
    reader has not finished stays (nothing accepted is lost). Files deleted and kept unread.
    ``on_delete`` gets each deleted file's relative path first (an object store's copy)."""
    landing_dir = Path(landing_dir)
    out = {"landing_files": 0, "landing_files_unread": 0}
    for day_dir in expired_landing_days(landing_dir, cutoff):
        files = [p for p in day_dir.rglob("*") if p.is_file()]
        unread = [
            p for p in files
            if p.suffix == ".jsonl" and any(
                (r or {}).get(p.relative_to(landing_dir).as_posix(), 0) < p.stat().st_size
                for r in readers
            )
        ]  # fmt: skip
        if unread:
            out["landing_files_unread"] += len(unread)
            continue
        out["landing_files"] += len(files)
        if not dry_run:
            for p in files if on_delete else ():
                on_delete(p.relative_to(landing_dir).as_posix())
            shutil.rmtree(day_dir)
    return out


def _exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = 'raw' and table_name = ?",
            [table],
        ).fetchall()[0][0]
    )


def _change(con: duckdb.DuckDBPyConnection, count_sql: str, sql: str, args: list, dry: bool) -> int:
    n = int(con.execute(count_sql, args).fetchall()[0][0])
    if n and not dry:
        con.execute(sql, args)
    return n


def expire_warehouse(
    con: duckdb.DuckDBPyConnection, bodies_cutoff: datetime, analytics_cutoff: datetime,
    *, dry_run: bool = False,
) -> dict[str, dict[str, int]]:  # fmt: skip
    """Blank raw webhook bodies past `bodies_cutoff` and delete raw event rows past
    `analytics_cutoff`; per class and table, how many rows."""
    out: dict[str, dict[str, int]] = {"webhook_bodies": {}, "analytics": {}}
    bodies, analytics = _naive_utc(bodies_cutoff), _naive_utc(analytics_cutoff)
    for table, column in ANALYTICS_TABLES.items():
        if not _exists(con, table):
            continue
        where = f"from raw.{table} where {column} < ?"
        out["analytics"][table] = _change(
            con, f"select count(*) {where}", f"delete {where}", [analytics], dry_run
        )
    if _exists(con, "webhook_events"):
        # Rows the analytics term deletes are not counted again (a dry run deletes nothing).
        where = "where body is not null and received_at < ? and received_at >= ?"
        out["webhook_bodies"]["webhook_events"] = _change(
            con, f"select count(*) from raw.webhook_events {where}",
            f"update raw.webhook_events set body = null {where}", [bodies, analytics], dry_run,
        )  # fmt: skip
    return out


def scrub(value: Any) -> Any:
    """`value` without PERSONAL_KEYS at any depth."""
    if isinstance(value, Mapping):
        return {k: scrub(v) for k, v in value.items() if str(k).lower() not in PERSONAL_KEYS}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def _scrub_json(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        return json.dumps(scrub(json.loads(text)), sort_keys=True, separators=(",", ":"))
    except ValueError:
        return None  # not JSON: nothing of it can be kept safely


def _in(column: str, n: int) -> str:
    return f"cast({column} as varchar) in ({', '.join('?' * n)})"


def scrub_erased_customers(
    con: duckdb.DuckDBPyConnection, scope: Sequence[Mapping[str, Any]]
) -> dict[str, int]:
    """Remove erased customers' personal data from the raw copies: the gateway JSON of their
    customer objects, charges and events, webhook bodies naming them, and the mails copied
    before the ledger pseudonymized them. Idempotent; rows changed per table."""
    out: dict[str, int] = {}
    if not scope:
        return out
    names = _terms(scope)
    payments = sorted({str(p) for c in scope for p in c["gateway_payment_ids"]})
    for table, (key, column, refs) in SCRUBBED.items():
        if not _exists(con, table):
            continue
        terms = names + payments if table != "gateway_customers" else names
        where = " or ".join(_in(r, len(terms)) for r in refs)
        rows = con.execute(
            f"select {key}, {column} from raw.{table} where {where}", terms * len(refs)
        ).fetchall()
        changed = [(new, k) for k, old in rows if (new := _scrub_json(old)) != old]
        if changed:
            con.executemany(f"update raw.{table} set {column} = ? where {key} = ?", changed)
        out[table] = len(changed)
    if _exists(con, "webhook_events"):
        needles = [t for t in names + payments if not t.isdigit()]  # ids too short to search
        n = 0
        for needle in needles:
            where = "where body is not null and contains(body, ?)"
            n += _change(con, f"select count(*) from raw.webhook_events {where}",
                         f"update raw.webhook_events set body = null {where}", [f'"{needle}"'], False)  # fmt: skip
        out["webhook_events"] = n
    if _exists(con, "ledger_document_deliveries"):
        n = 0
        for c in scope:
            ids = [str(i) for i in c["delivery_ids"]]
            if not ids:
                continue
            recipient = f"erased-customer-{c['customer_id']}@invalid"
            where = f"where {_in('id', len(ids))} and (recipient <> ? or subject <> '')"
            n += _change(
                con, f"select count(*) from raw.ledger_document_deliveries {where}",
                f"update raw.ledger_document_deliveries set recipient = ?, subject = '' "
                f"where {_in('id', len(ids))}", [*ids, recipient], True,
            )  # fmt: skip
            con.execute(
                "update raw.ledger_document_deliveries set recipient = ?, subject = '' "
                f"where {_in('id', len(ids))}",
                [recipient, *ids],
            )
        out["ledger_document_deliveries"] = n
    return out


def _terms(scope: Iterable[Mapping[str, Any]]) -> list[str]:
    """The customer ids and gateway customer ids of the erased customers, as text."""
    terms = {str(c["customer_id"]) for c in scope}
    terms |= {str(g) for c in scope for g in c["gateway_customer_ids"]}
    return sorted(terms)
