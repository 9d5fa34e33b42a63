"""The truth checks of `benchmarks/faults.py`: read the ledger, the simulated gateway's state,
what the SMTP server received and what the webhook landing zone holds, and count faults.

Each function only reads and counts, so a test can hand it a store with a planted fault."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path

COLUMNS = (
    "duplicate_invoices",
    "numbering_gaps",
    "double_charges",
    "acked_lost_events",
    "duplicate_mails",
)


@dataclass
class Faults:
    """The five fault counts of one job (or the total); every one must be zero."""

    duplicate_invoices: int = 0
    numbering_gaps: int = 0
    double_charges: int = 0
    acked_lost_events: int = 0
    duplicate_mails: int = 0

    def __add__(self, other: Faults) -> Faults:
        return Faults(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def total(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self))


def _sqlite(path: Path) -> sqlite3.Connection:
    if not path.exists():
        raise FileNotFoundError(f"no such store: {path}")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    return conn


def invoice_faults(ledger: Path) -> Faults:
    """Duplicate invoices (one subscription period invoiced twice, not counting voided ones,
    or one invoice with two documents or two queued invoice mails) and gaps in the numbering
    (per financial year: a number missing from 1..n, or the sequence past the last number)."""
    conn = _sqlite(ledger)
    try:
        periods = conn.execute(
            "select count(*) - 1 from invoices where kind = 'recurring' and status != 'void' "
            "group by subscription_id, period_start having count(*) > 1"
        ).fetchall()
        duplicates = sum(r[0] for r in periods)
        docs = conn.execute(
            "select count(*) - 1 from document_deliveries where resend_of is null "
            "and document_number is not null "
            "group by kind, document_number, recipient having count(*) > 1"
        ).fetchall()
        numbers: dict[str, list[int]] = {}
        for r in conn.execute(
            "select financial_year, number from invoices where number is not null"
        ):
            numbers.setdefault(r["financial_year"], []).append(int(r["number"].rsplit("/", 1)[1]))
        last = dict(conn.execute("select financial_year, last_value from invoice_sequences"))
    finally:
        conn.close()
    gaps = 0
    for fy, got in numbers.items():
        top = max(max(got), last.get(fy, 0))
        gaps += top - len(set(got))  # numbers never used (or the sequence skipped ahead)
        duplicates += len(got) - len(set(got))
    return Faults(duplicate_invoices=duplicates + sum(r[0] for r in docs), numbering_gaps=gaps)


def charge_faults(ledger: Path, gateway: Path, first_invoice_id: int = 0) -> Faults:
    """Double charges: an invoice with more than one succeeded charge at the gateway, or whose
    succeeded charges (less refunds) exceed the amount that was due. Invoices below
    `first_invoice_id` (the world as built, with its deliberate discrepancies) are not looked at."""
    led, gw = _sqlite(ledger), _sqlite(gateway)
    try:
        due = {
            r["id"]: r["amount_due_minor"]
            for r in led.execute(
                "select id, amount_due_minor from invoices where id >= ?", (first_invoice_id,)
            )
        }
        charges = gw.execute(
            "select invoice_id, amount_minor, amount_refunded_minor from sim_payments "
            "where status = 'succeeded' and invoice_id is not null"
        ).fetchall()
    finally:
        led.close()
        gw.close()
    count: Counter[int] = Counter()
    amount: Counter[int] = Counter()
    for c in charges:
        inv = int(c["invoice_id"])
        if inv in due:
            count[inv] += 1
            amount[inv] += c["amount_minor"] - c["amount_refunded_minor"]
    doubles = sum(1 for inv in count if count[inv] > 1 or amount[inv] > due[inv])
    return Faults(double_charges=doubles)


def mail_faults(message_ids: Iterable[str]) -> Faults:
    """Duplicate mails: a Message-ID the SMTP server accepted more than once."""
    seen = Counter(message_ids)
    return Faults(duplicate_mails=sum(n - 1 for n in seen.values() if n > 1))


def landed_event_ids(landing: Path) -> Counter[str]:
    """Event ids in the webhook journal (landing/webhooks/<source>/<day>/*.jsonl)."""
    ids: Counter[str] = Counter()
    for path in sorted((landing / "webhooks").glob("*/*/*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                ids[json.loads(line)["event_id"]] += 1
    return ids


def warehouse_event_ids(warehouse: Path) -> set[str]:
    """Event ids the warehouse loaded into raw.webhook_events."""
    from ingestion.warehouse import connect

    con = connect(warehouse, read_only=True)
    try:
        return {r[0] for r in con.execute("select event_id from raw.webhook_events").fetchall()}
    finally:
        con.close()


def webhook_faults(
    acknowledged: Iterable[str], landing: Path, warehouse: Path | None = None
) -> Faults:
    """Acknowledged-but-lost: an event the sender got a 2xx for that is not in the journal
    (or, given `warehouse`, not loaded into its raw.webhook_events)."""
    landed = set(landed_event_ids(landing))
    if warehouse is not None:
        landed &= warehouse_event_ids(warehouse)
    return Faults(acked_lost_events=sum(1 for e in set(acknowledged) if e not in landed))
