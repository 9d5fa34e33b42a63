"""Queue an invoice or credit note PDF for e-mail through the outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from billing_jobs.invoicing.documents import DocumentKind, InvoiceDocument
from billing_jobs.invoicing.documents.i18n import LOCALES, format_day, format_money
from billing_jobs.invoicing.mail.outbox import Attachment, FileAttachment, QueuedMail, queue_message


def _context(doc: InvoiceDocument, lang: str) -> dict[str, Any]:
    loc = LOCALES.get(lang, "en_IN")
    return {
        "customer_name": doc.recipient.name,
        "supplier_name": doc.supplier.name,
        "document_number": doc.number,
        "amount": format_money(doc.totals.total_minor, doc.currency, loc),
        "due_date": format_day(doc.due_date, loc) if doc.due_date else None,
        "original_number": doc.original_invoice.number if doc.original_invoice else None,
    }


def _subject_key(doc: InvoiceDocument) -> str:
    return "credit_note_issued" if doc.kind is DocumentKind.CREDIT_NOTE else "invoice_issued"


def _dedupe_key(doc: InvoiceDocument, to: str) -> str:
    return f"{doc.kind.value}:{doc.financial_year}:{doc.number}:{to.strip().lower()}"


def attachment_name(doc: InvoiceDocument) -> str:
    return doc.number.replace("/", "_") + ".pdf"


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
    return queue_message(
        engine,
        kind=doc.kind.value,
        to=to,
        subject_key=_subject_key(doc),
        context=_context(doc, lang),
        attachments=[Attachment(attachment_name(doc), pdf)],
        now=now,
        lang=lang,
        dedupe_key=_dedupe_key(doc, to),
        document_number=doc.number,
    )


def document_mail(
    doc: InvoiceDocument, *, to: str, lang: str, path: str, sha256: str
) -> QueuedMail:
    """The outbox entry for a stored document (attached from `path` at send time), for
    `queue_messages`; same dedupe key as `queue_document`, so the two never both send."""
    return QueuedMail(
        kind=doc.kind.value,
        to=to,
        subject_key=_subject_key(doc),
        context=_context(doc, lang),
        lang=lang,
        dedupe_key=_dedupe_key(doc, to),
        document_number=doc.number,
        files=(FileAttachment(attachment_name(doc), path, sha256),),
    )
