"""The parallel invoice run against a real SQLite ledger: bulk loading, process pool, one
transaction per chunk, crash recovery, and mail attached from the stored file (aiosmtpd)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, func, select

from billing_jobs.catalog import DEMO_CATALOG, load_catalog
from billing_jobs.invoicing.builder import LineInput
from billing_jobs.invoicing.documents import invoice_run
from billing_jobs.invoicing.documents.from_ledger import load_documents
from billing_jobs.invoicing.documents.invoice_run import InvoiceRunError, run_invoice_documents
from billing_jobs.invoicing.mail import (
    FileAttachment,
    OutboxError,
    QueuedMail,
    queue_messages,
    send_due,
)
from billing_jobs.ledger import make_engine, upgrade_ledger
from billing_jobs.ledger.schema import (
    document_deliveries,
    document_delivery_files,
    invoice_documents,
)
from tests.invoice_seed import seed_invoice

T0 = datetime(2025, 4, 1, 6, 0, tzinfo=UTC)
NOW = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def ledger(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    upgrade_ledger(engine)
    load_catalog(engine, DEMO_CATALOG, now=T0)
    yield engine
    engine.dispose()


def _seed(engine, n: int, *, email: str | None = "ap@kaveri.test", locale: str = "en_IN"):
    """n finalized invoices of 5-7 lines (intra- and inter-state) through the ledger schema."""
    return [
        seed_invoice(
            engine,
            i,
            name=f"Kaveri Analytics {i}",
            email=email,
            locale=locale,
            lines=[
                LineInput("subscription", f"Seat pack {k}", None, "998314", 1 + k, 49_900 + k)
                for k in range(5 + i % 3)
            ],
            issued_at=T0 + timedelta(days=i),
            created_at=T0,
        )
        for i in range(n)
    ]


def _count(engine, table) -> int:
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(table)).scalar_one()
        conn.rollback()
    return n


def test_load_documents_reads_a_batch_in_a_fixed_number_of_queries(ledger):
    ids = _seed(ledger, 6)
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(ledger, "before_cursor_execute", count)
    try:
        with ledger.connect() as conn:
            docs, errors = load_documents(conn, [*ids, 9999])
    finally:
        event.remove(ledger, "before_cursor_execute", count)
    assert sorted(docs) == sorted(ids) and list(errors) == [9999]
    assert "does not exist" in errors[9999]
    # settings, invoices, lines, customers: no query per invoice.
    assert len(statements) <= 5, statements
    assert all(len(d.lines) >= 5 for d in docs.values())


def test_pool_run_renders_stores_and_queues_each_invoice_exactly_once(ledger, tmp_path):
    ids = _seed(ledger, 6)
    root = tmp_path / "invoices"
    report = run_invoice_documents(ledger, root, NOW, workers=2, chunk_size=1)
    assert report.workers == 2 and not report.errors
    assert (report.rendered, report.queued) == (6, 6)
    pdfs = sorted(root.rglob("*.pdf"))
    assert len(pdfs) == 6 and not list(root.rglob("*.tmp"))
    assert _count(ledger, invoice_documents) == 6 and _count(ledger, document_deliveries) == 6
    with ledger.connect() as conn:
        refs = conn.execute(select(document_delivery_files)).all()
        docs = {r.invoice_id: r for r in conn.execute(select(invoice_documents))}
        conn.rollback()
    assert sorted(docs) == sorted(ids)
    for ref in refs:  # the outbox pins the exact bytes on disk
        assert hashlib.sha256(Path(ref.path).read_bytes()).hexdigest() == ref.sha256
    again = run_invoice_documents(ledger, root, NOW, workers=2, chunk_size=1)
    assert (again.rendered, again.queued) == (0, 0)
    assert _count(ledger, document_deliveries) == 6


def test_crash_after_some_chunks_loses_nothing_and_mails_nothing_twice(
    ledger, tmp_path, monkeypatch
):
    _seed(ledger, 6)
    root = tmp_path / "invoices"
    real = invoice_run._record
    calls = {"n": 0}

    def crash_on_second_chunk(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("power cut")
        return real(*args, **kwargs)

    monkeypatch.setattr(invoice_run, "_record", crash_on_second_chunk)
    with pytest.raises(RuntimeError, match="power cut"):
        run_invoice_documents(ledger, root, NOW, workers=1, chunk_size=2)
    assert _count(ledger, invoice_documents) == 2 and _count(ledger, document_deliveries) == 2
    monkeypatch.setattr(invoice_run, "_record", real)
    rest = run_invoice_documents(ledger, root, NOW, workers=1, chunk_size=2)
    assert rest.rendered == 4 and rest.queued == 4
    assert _count(ledger, invoice_documents) == 6 and _count(ledger, document_deliveries) == 6


def test_failure_inside_a_chunk_commits_neither_documents_nor_mails(ledger, tmp_path, monkeypatch):
    _seed(ledger, 3)

    def outbox_down(*args, **kwargs):
        raise OutboxError("outbox unavailable")

    monkeypatch.setattr(invoice_run, "queue_messages", outbox_down)
    with pytest.raises(OutboxError):
        run_invoice_documents(ledger, tmp_path / "inv", NOW, workers=1, chunk_size=3)
    # The chunk's document rows rolled back with its mails: the next run redoes both.
    assert _count(ledger, invoice_documents) == 0
    monkeypatch.undo()
    report = run_invoice_documents(ledger, tmp_path / "inv", NOW, workers=1)
    assert (report.rendered, report.queued) == (3, 3)


def test_customer_without_address_is_stored_not_mailed_and_bad_arguments_refused(ledger, tmp_path):
    _seed(ledger, 2, email=None, locale="hi_IN")
    with pytest.raises(InvoiceRunError, match="timezone-aware"):
        run_invoice_documents(ledger, tmp_path, datetime(2025, 6, 1))
    with pytest.raises(InvoiceRunError, match="positive"):
        run_invoice_documents(ledger, tmp_path, NOW, chunk_size=0)
    report = run_invoice_documents(ledger, tmp_path / "inv", NOW)
    assert (report.rendered, report.queued, report.skipped) == (2, 0, 2)
    with ledger.connect() as conn:
        langs = conn.execute(select(invoice_documents.c.lang)).scalars().all()
        conn.rollback()
    assert langs == ["hi", "hi"]


def test_stored_pdf_is_mailed_and_a_changed_or_lost_file_is_never_sent(
    ledger, tmp_path, smtp_server
):
    handler, settings = smtp_server
    _seed(ledger, 3)
    root = tmp_path / "invoices"
    run_invoice_documents(ledger, root, NOW, workers=1)
    with ledger.connect() as conn:
        refs = conn.execute(
            select(document_delivery_files).order_by(document_delivery_files.c.delivery_id)
        ).all()
        conn.rollback()
    original = Path(refs[0].path).read_bytes()
    Path(refs[1].path).write_bytes(b"%PDF-1.7 tampered")
    Path(refs[2].path).unlink()
    report = send_due(ledger, NOW + timedelta(minutes=1), settings)
    assert report.sent == [refs[0].delivery_id]
    assert sorted(report.failed) == sorted([refs[1].delivery_id, refs[2].delivery_id])
    assert len(handler.messages) == 1
    att = next(handler.messages[0].iter_attachments())
    assert att.get_content() == original and att.get_filename().endswith(".pdf")
    with ledger.connect() as conn:
        errors = dict(
            conn.execute(
                select(document_deliveries.c.id, document_deliveries.c.last_error).where(
                    document_deliveries.c.status == "failed"
                )
            ).all()
        )
        conn.rollback()
    assert "no longer matches the sha256" in errors[refs[1].delivery_id]
    assert "cannot be read" in errors[refs[2].delivery_id]
    # Failed for good: a later pass does not retry them.
    assert send_due(ledger, NOW + timedelta(days=1), settings).sent == []


def _mail(key: str | None, to: str = "ap@kaveri.test", path: str = "/tmp/x.pdf") -> QueuedMail:
    return QueuedMail(
        kind="tax_invoice",
        to=to,
        subject_key="invoice_issued",
        context={
            "customer_name": "Kaveri",
            "supplier_name": "Paysight",
            "document_number": "INV-1",
            "amount": "₹1.00",
            "due_date": None,
            "original_number": None,
        },
        dedupe_key=key,
        files=(FileAttachment("INV-1.pdf", path, "a" * 64),),
    )


def test_queue_messages_dedupes_in_batch_and_against_the_outbox_and_refuses_bad_input(ledger):

    with ledger.begin() as conn:
        first = queue_messages(conn, [_mail("k1"), _mail("k2"), _mail("k1")], now=NOW)
    assert first[0] == first[2] and first[0] != first[1]
    with ledger.begin() as conn:
        again = queue_messages(conn, [_mail("k2"), _mail("k3"), _mail(None)], now=NOW)
    assert again[0] == first[1] and len(set(again)) == 3
    assert _count(ledger, document_deliveries) == 4
    assert _count(ledger, document_delivery_files) == 4
    with pytest.raises(OutboxError, match="single e-mail address"), ledger.begin() as conn:
        queue_messages(conn, [_mail("k4"), _mail("k5", to="a@b.test, c@d.test")], now=NOW)
    assert _count(ledger, document_deliveries) == 4  # the whole batch was refused
    with pytest.raises(OutboxError, match="absolute"):
        FileAttachment("INV-1.pdf", "relative/x.pdf", "a" * 64)
    with pytest.raises(OutboxError, match="unsafe"):
        FileAttachment("../../etc/passwd", "/tmp/x.pdf", "a" * 64)
    with pytest.raises(OutboxError, match="sha256"):
        FileAttachment("INV-1.pdf", "/tmp/x.pdf", "not-a-hash")
