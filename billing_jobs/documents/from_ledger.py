"""Ledger invoices as printable documents, and the invoice run that renders, stores and mails them.

`invoice_document` maps one finalized ledger invoice onto `InvoiceDocument`; `run_invoice_documents`
renders every finalized invoice that has no document yet, writes it under
``<root>/<FY>/<number>.pdf`` (atomically) and queues it for mail exactly once.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, select

from billing_jobs.documents.model import (
    DocumentKind,
    InvoiceDocument,
    Line,
    Party,
    StateRef,
    Totals,
    fy_of,
)
from billing_jobs.documents.render import document_path, render_pdf
from billing_jobs.gst import STATE_CODES
from billing_jobs.ledger import schema as s
from billing_jobs.ledger.session import Target, write_conn
from billing_jobs.mail import ensure_delivery_tables, queue_document

document_metadata = MetaData()

invoice_documents = Table(
    "invoice_documents",
    document_metadata,
    Column("invoice_id", Integer, primary_key=True),
    Column("number", String(16), nullable=False, unique=True),
    Column("path", String(500), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("lang", String(8), nullable=False),
    Column("rendered_at", DateTime(timezone=True), nullable=False),
)


class DocumentSourceError(ValueError):
    """A ledger invoice cannot be turned into a document (draft, missing supplier data...)."""


def ensure_document_tables(target: Any) -> None:
    engine = getattr(target, "engine", target)
    document_metadata.create_all(engine)
    ensure_delivery_tables(engine)


def _state(code: str) -> StateRef:
    return StateRef(name=STATE_CODES.get(code, code), code=code)


def _settings(conn: Any) -> dict[str, str]:
    rows = conn.execute(select(s.settings.c.key, s.settings.c.value)).all()
    return {k: v for k, v in rows}


def _rate(bp: int) -> Fraction:
    return Fraction(bp, 100)


def invoice_document(
    target: Target, invoice_id: int, *, brand: str | None = None
) -> InvoiceDocument:
    """The printable tax invoice for a finalized ledger invoice."""
    with write_conn(target) as conn:
        inv = conn.execute(select(s.invoices).where(s.invoices.c.id == invoice_id)).first()
        if inv is None:
            raise DocumentSourceError(f"invoice {invoice_id} does not exist")
        if inv.number is None or inv.status == "draft":
            raise DocumentSourceError(f"invoice {invoice_id} is a draft: finalize it first")
        cust = conn.execute(select(s.customers).where(s.customers.c.id == inv.customer_id)).one()
        lines = conn.execute(
            select(s.invoice_lines)
            .where(s.invoice_lines.c.invoice_id == invoice_id)
            .order_by(s.invoice_lines.c.position)
        ).all()
        conf = _settings(conn)
    supplier_gstin = inv.supplier_gstin or conf.get("supplier_gstin")
    if not supplier_gstin:
        raise DocumentSourceError("no supplier GSTIN in the ledger settings: load a catalog")
    supplier = Party(
        name=conf.get("supplier_name", "") or "Supplier",
        address=tuple(
            p for p in (conf.get("supplier_address", ""), conf.get("supplier_city", "")) if p
        )
        or ("India",),
        state=_state(supplier_gstin[:2]),
        gstin=supplier_gstin,
    )
    recipient = Party(
        name=cust.name,
        address=tuple(p for p in (cust.address_line, cust.city, cust.postal_code) if p)
        or (cust.country,),
        state=_state(cust.state_code),
        gstin=inv.customer_gstin,
    )
    doc_lines = []
    for ln in lines:
        qty = max(1, int(ln.quantity))
        intra = ln.cgst_minor != 0 or ln.sgst_minor != 0
        rate = _rate(ln.tax_rate_bp)
        doc_lines.append(
            Line(
                description=ln.description,
                sac_hsn=ln.sac,
                quantity=qty,
                # Unit price for display only; the taxable value is the exact amount billed.
                unit_price_minor=int(Fraction(ln.amount_minor, qty)),
                taxable_value_minor=int(ln.taxable_minor),
                tax_rate=rate,
                cgst_rate=rate / 2 if intra else 0,
                cgst_minor=int(ln.cgst_minor),
                sgst_rate=rate / 2 if intra else 0,
                sgst_minor=int(ln.sgst_minor),
                igst_rate=0 if intra else rate,
                igst_minor=int(ln.igst_minor),
            )
        )
    issued = inv.issued_at.date()
    totals = Totals(
        taxable_minor=int(inv.taxable_minor),
        cgst_minor=int(inv.cgst_minor),
        sgst_minor=int(inv.sgst_minor),
        igst_minor=int(inv.igst_minor),
        round_off_minor=0,
        total_minor=int(inv.taxable_minor + inv.cgst_minor + inv.sgst_minor + inv.igst_minor),
    )
    return InvoiceDocument(
        kind=DocumentKind.TAX_INVOICE,
        number=inv.number,
        issue_date=issued,
        financial_year=fy_of(issued),
        supplier=supplier,
        recipient=recipient,
        place_of_supply=_state(inv.place_of_supply),
        currency=inv.currency,
        lines=tuple(doc_lines),
        totals=totals,
        reverse_charge=bool(inv.reverse_charge),
        locale=cust.locale or "en_IN",
        brand=brand,
    )


@dataclass
class InvoiceRunReport:
    rendered: int = 0
    queued: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)


def _lang(locale: str | None) -> str:
    prefix = (locale or "en").split("_")[0]
    return prefix if prefix in {"en", "hi", "mr"} else "en"


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".pdf.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def run_invoice_documents(
    target: Target,
    root: Path,
    now: datetime,
    *,
    limit: int | None = None,
    mail: bool = True,
    brand: str | None = None,
) -> InvoiceRunReport:
    """Render every finalized invoice without a document, store it and queue it for mail.

    Safe to re-run after a crash: an invoice counts as done only once its row in
    ``invoice_documents`` is committed, and queueing the same document twice returns the first
    delivery, so nothing is mailed twice.
    """
    engine = getattr(target, "engine", target)
    ensure_document_tables(engine)
    report = InvoiceRunReport()
    with engine.connect() as conn:
        done = select(invoice_documents.c.invoice_id)
        q = (
            select(s.invoices.c.id, s.customers.c.email, s.customers.c.locale)
            .join(s.customers, s.customers.c.id == s.invoices.c.customer_id)
            .where(s.invoices.c.number.is_not(None), s.invoices.c.id.not_in(done))
            .order_by(s.invoices.c.id)
        )
        if limit:
            q = q.limit(limit)
        todo = conn.execute(q).all()
    for invoice_id, email, locale in todo:
        try:
            doc = invoice_document(engine, invoice_id, brand=brand)
        except (DocumentSourceError, ValueError) as exc:
            report.errors.append(f"invoice {invoice_id}: {exc}")
            continue
        lang = _lang(locale)
        pdf = render_pdf(doc, lang=lang)
        path = document_path(Path(root), doc)
        _write_atomic(path, pdf)
        if mail and email:
            queue_document(engine, doc, pdf, to=email, now=now, lang=lang)
            report.queued += 1
        elif mail:
            report.skipped += 1
        with engine.begin() as conn:
            conn.execute(
                invoice_documents.insert().values(
                    invoice_id=invoice_id,
                    number=doc.number,
                    path=str(path),
                    sha256=hashlib.sha256(pdf).hexdigest(),
                    lang=lang,
                    rendered_at=now,
                )
            )
        report.rendered += 1
    return report
