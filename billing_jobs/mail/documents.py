"""Queue an invoice or credit note PDF for e-mail through the outbox."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Engine

from billing_jobs.documents import DocumentKind, InvoiceDocument
from billing_jobs.documents.i18n import LOCALES, format_day, format_money
from billing_jobs.mail.outbox import Attachment, queue_message


def queue_document(
    engine: Engine,
    doc: InvoiceDocument,
    pdf: bytes,
    *,
    to: str,
    now: datetime,
    lang: str = "en",
) -> int:
    """Queue `pdf` (rendered from `doc`) to `to`; queueing the same document to the same
    address again returns the first delivery instead of mailing twice."""
    loc = LOCALES.get(lang, "en_IN")
    credit = doc.kind is DocumentKind.CREDIT_NOTE
    context = {
        "customer_name": doc.recipient.name,
        "supplier_name": doc.supplier.name,
        "document_number": doc.number,
        "amount": format_money(doc.totals.total_minor, doc.currency, loc),
        "due_date": format_day(doc.due_date, loc) if doc.due_date else None,
        "original_number": doc.original_invoice.number if doc.original_invoice else None,
    }
    filename = doc.number.replace("/", "_") + ".pdf"
    return queue_message(
        engine,
        kind=doc.kind.value,
        to=to,
        subject_key="credit_note_issued" if credit else "invoice_issued",
        context=context,
        attachments=[Attachment(filename, pdf)],
        now=now,
        lang=lang,
        dedupe_key=f"{doc.kind.value}:{doc.financial_year}:{doc.number}:{to.strip().lower()}",
        document_number=doc.number,
    )
