"""What expires from the ledger under the retention policy, deleted (or, for raw webhook bodies,
blanked) in one transaction, with a count per class and table. Idempotent; `dry_run` counts only.

Referential rule: an invoice, its lines, credit notes (and their lines), payment attempts,
refunds, disputes, collection state, dunning notifications and rendered document rows form one
bundle, deleted together once every member is past its own term (invoices and credit notes 8
years from the end of the financial year of issue, payments 7 years from creation) and no
dispute is still open. A payment is therefore never deleted while its invoice is kept.
Customer balance transactions and proration rows that point at a deleted invoice keep their
amounts (the customer's balance is their sum) and lose only the pointer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, delete, exists, not_, or_, select, update

from billing_jobs.ledger import schema as s
from billing_jobs.ledger.session import Target, engine_of
from billing_jobs.periods import require_aware
from billing_jobs.retention.policy import RetentionPolicy


@dataclass
class RetentionReport:
    """Rows deleted (or bodies blanked) per class and per table; the document files whose rows
    went with their invoices (the caller removes them from the document store)."""

    as_of: datetime
    dry_run: bool
    cutoffs: dict[str, datetime]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    document_paths: list[str] = field(default_factory=list)

    def add(self, cls: str, table: str, n: int) -> None:
        per = self.counts.setdefault(cls, {})
        per[table] = per.get(table, 0) + max(n, 0)

    def totals(self) -> dict[str, int]:
        return {cls: sum(per.values()) for cls, per in self.counts.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "dry_run": self.dry_run,
            "cutoffs": {k: v.isoformat() for k, v in self.cutoffs.items()},
            "counts": self.counts,
            "totals": self.totals(),
            "documents": len(self.document_paths),
        }


def expired_invoice_ids(conn: Connection, invoices_cutoff: datetime, payments_cutoff: datetime):
    """Ids of invoices whose whole bundle is past its term (see the module docstring)."""
    i, cn, pa = s.invoices, s.credit_notes, s.payment_attempts
    rf, dp = s.payments_refunds, s.payments_disputes
    query = select(i.c.id).where(
        i.c.issued_at < invoices_cutoff,
        not_(exists().where(cn.c.invoice_id == i.c.id, cn.c.issued_at >= invoices_cutoff)),
        not_(exists().where(pa.c.invoice_id == i.c.id, pa.c.created_at >= payments_cutoff)),
        not_(exists().where(rf.c.invoice_id == i.c.id, rf.c.created_at >= payments_cutoff)),
        not_(
            exists().where(
                dp.c.invoice_id == i.c.id,
                or_(dp.c.closed_at.is_(None), dp.c.last_event_at >= payments_cutoff),
            )
        ),
    )
    return [r[0] for r in conn.execute(query.order_by(i.c.id))]


def _chunks(ids: list[int], size: int = 500):
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _delete_bundles(conn: Connection, ids: list[int], report: RetentionReport) -> None:
    for chunk in _chunks(ids):
        cn_ids = [
            r[0] for r in conn.execute(select(s.credit_notes.c.id).where(
                s.credit_notes.c.invoice_id.in_(chunk)))
        ]  # fmt: skip
        line_ids = [
            r[0] for r in conn.execute(select(s.invoice_lines.c.id).where(
                s.invoice_lines.c.invoice_id.in_(chunk)))
        ]  # fmt: skip
        report.document_paths += [
            r[0] for r in conn.execute(select(s.invoice_documents.c.path).where(
                s.invoice_documents.c.invoice_id.in_(chunk)))
        ]  # fmt: skip
        report.document_paths += [
            r[0] for r in conn.execute(select(s.credit_note_documents.c.path).where(
                s.credit_note_documents.c.credit_note_id.in_(cn_ids or [-1])))
        ]  # fmt: skip
        bt, sc = s.customer_balance_transactions, s.subscription_charges
        conn.execute(update(bt).where(bt.c.invoice_id.in_(chunk)).values(invoice_id=None))
        if cn_ids:
            conn.execute(
                update(bt).where(bt.c.credit_note_id.in_(cn_ids)).values(credit_note_id=None)
            )
            conn.execute(
                update(sc).where(sc.c.credit_note_id.in_(cn_ids)).values(credit_note_id=None)
            )
        conn.execute(update(sc).where(sc.c.invoice_id.in_(chunk)).values(invoice_id=None))
        conn.execute(
            update(sc).where(sc.c.credit_invoice_id.in_(chunk)).values(credit_invoice_id=None)
        )
        if line_ids:
            conn.execute(
                update(sc).where(sc.c.invoice_line_id.in_(line_ids)).values(invoice_line_id=None)
            )
        steps: list[tuple[str, Table, Any]] = [
            ("invoices", s.credit_note_lines, s.credit_note_lines.c.credit_note_id.in_(cn_ids or [-1])),
            ("invoices", s.credit_note_documents, s.credit_note_documents.c.credit_note_id.in_(cn_ids or [-1])),
            ("invoices", s.credit_notes, s.credit_notes.c.invoice_id.in_(chunk)),
            ("invoices", s.invoice_lines, s.invoice_lines.c.invoice_id.in_(chunk)),
            ("invoices", s.invoice_documents, s.invoice_documents.c.invoice_id.in_(chunk)),
            ("payments", s.payment_attempts, s.payment_attempts.c.invoice_id.in_(chunk)),
            ("payments", s.payments_refunds, s.payments_refunds.c.invoice_id.in_(chunk)),
            ("payments", s.payments_disputes, s.payments_disputes.c.invoice_id.in_(chunk)),
            ("payments", s.payments_collection_state, s.payments_collection_state.c.invoice_id.in_(chunk)),
            ("payments", s.payments_dunning_notifications, s.payments_dunning_notifications.c.invoice_id.in_(chunk)),
            ("invoices", s.invoices, s.invoices.c.id.in_(chunk)),
        ]  # fmt: skip
        for cls, table, where in steps:
            report.add(cls, table.name, conn.execute(delete(table).where(where)).rowcount)


def _delete_ledger_records(conn: Connection, cutoff: datetime, report: RetentionReport) -> None:
    dd = s.document_deliveries
    ids = [r[0] for r in conn.execute(select(dd.c.id).where(dd.c.created_at < cutoff))]
    for chunk in _chunks(ids):
        # A newer resend keeps its own row; it just no longer points at the deleted original.
        conn.execute(update(dd).where(dd.c.resend_of.in_(chunk)).values(resend_of=None))
        for table in (s.document_delivery_attachments, s.document_delivery_files):
            n = conn.execute(delete(table).where(table.c.delivery_id.in_(chunk))).rowcount
            report.add("ledger", table.name, n)
        n = conn.execute(delete(dd).where(dd.c.id.in_(chunk))).rowcount
        report.add("ledger", dd.name, n)
    for table, column in (
        (s.subscription_events, s.subscription_events.c.at),
        (s.payments_gateway_events, s.payments_gateway_events.c.updated_at),
        (s.ops_alerts, s.ops_alerts.c.created_at),
        (s.idempotency_records, s.idempotency_records.c.created_at),
    ):
        report.add(
            "ledger", table.name, conn.execute(delete(table).where(column < cutoff)).rowcount
        )


def _blank_webhook_bodies(conn: Connection, cutoff: datetime, report: RetentionReport) -> None:
    for table in (s.payments_gateway_events, s.payments_quarantined_events):
        n = conn.execute(
            update(table)
            .where(table.c.body.is_not(None), table.c.first_seen_at < cutoff)
            .values(body=None)
        ).rowcount
        report.add("webhook_bodies", table.name, n)


def apply_ledger_retention(
    target: Target, policy: RetentionPolicy, as_of: datetime, *, dry_run: bool = False
) -> RetentionReport:
    """Delete what is past its term at `as_of` (one transaction; rolled back when `dry_run`)."""
    as_of = require_aware(as_of, "as_of")
    cutoffs = policy.cutoffs(as_of)
    report = RetentionReport(as_of, dry_run, cutoffs)
    with engine_of(target).connect() as conn:
        trans = conn.begin()
        try:
            ids = expired_invoice_ids(conn, cutoffs["invoices"], cutoffs["payments"])
            _delete_bundles(conn, ids, report)
            _delete_ledger_records(conn, cutoffs["ledger"], report)
            _blank_webhook_bodies(conn, cutoffs["webhook_bodies"], report)
        except BaseException:
            trans.rollback()
            raise
        if dry_run:
            trans.rollback()
        else:
            trans.commit()
    return report


def remove_document_files(
    root: Path, paths: list[str], on_delete: Callable[[str], None] | None = None
) -> int:
    """Delete the rendered documents of deleted invoices and credit notes from the document
    store at `root`; a path outside it (or absent) is skipped. Returns how many were removed.
    ``on_delete`` gets each removed document's relative path first (an object store's copy)."""
    base = Path(root).resolve()
    removed = 0
    for rel in paths:
        path = (base / rel).resolve()
        if path.is_relative_to(base) and path.is_file():
            if on_delete:
                on_delete(path.relative_to(base).as_posix())
            path.unlink()
            removed += 1
    return removed
