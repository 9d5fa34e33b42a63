"""Ledger invoices as printable documents: `load_documents` maps finalized ledger invoices onto
`InvoiceDocument` in bulk; `invoice_documents` records which ones have a stored PDF (see
`invoice_run` for the run that renders, stores and mails them)."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from sqlalchemy import Connection, select

from billing_jobs.invoicing.documents.model import (
    DocumentKind,
    InvoiceDocument,
    Line,
    Party,
    StateRef,
    Totals,
    fy_of,
)
from billing_jobs.ledger import schema as s
from billing_jobs.ledger.session import Target, write_conn
from billing_jobs.tax.gst import STATE_CODES


class DocumentSourceError(ValueError):
    """A ledger invoice cannot be turned into a document (draft, missing supplier data...)."""


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
        docs, errors = load_documents(conn, [invoice_id], brand=brand)
    if invoice_id in errors:
        raise DocumentSourceError(errors[invoice_id])
    return docs[invoice_id]


def load_documents(
    conn: Connection, invoice_ids: Sequence[int], *, brand: str | None = None
) -> tuple[dict[int, InvoiceDocument], dict[int, str]]:
    """Documents for many invoices in three queries (invoices, their customers, their lines).

    Returns (documents by invoice id, error message by invoice id): one bad invoice (a draft,
    a malformed line) does not stop the others."""
    ids = list(dict.fromkeys(invoice_ids))
    conf = _settings(conn)
    invoices, lines_of = {}, {}
    for i in range(0, len(ids), _IN_CHUNK):
        chunk = ids[i : i + _IN_CHUNK]
        invoices.update(
            (r.id, r) for r in conn.execute(select(s.invoices).where(s.invoices.c.id.in_(chunk)))
        )
        for ln in conn.execute(
            select(s.invoice_lines)
            .where(s.invoice_lines.c.invoice_id.in_(chunk))
            .order_by(s.invoice_lines.c.invoice_id, s.invoice_lines.c.position)
        ):
            lines_of.setdefault(ln.invoice_id, []).append(ln)
    cust_ids = sorted({r.customer_id for r in invoices.values()})
    customers = {}
    for i in range(0, len(cust_ids), _IN_CHUNK):
        chunk = cust_ids[i : i + _IN_CHUNK]
        customers.update(
            (r.id, r) for r in conn.execute(select(s.customers).where(s.customers.c.id.in_(chunk)))
        )
    docs: dict[int, InvoiceDocument] = {}
    errors: dict[int, str] = {}
    for invoice_id in ids:
        inv = invoices.get(invoice_id)
        if inv is None:
            errors[invoice_id] = f"invoice {invoice_id} does not exist"
            continue
        try:
            docs[invoice_id] = _document(
                inv, customers[inv.customer_id], lines_of.get(invoice_id, []), conf, brand
            )
        except DocumentSourceError as exc:
            errors[invoice_id] = str(exc)
        except ValueError as exc:  # DocumentError and any other malformed value in the row
            errors[invoice_id] = f"invoice {invoice_id}: {exc}"
    return docs, errors


_IN_CHUNK = 500  # ids per IN (...) list: far below SQLite's and PostgreSQL's parameter limits


def _document(
    inv: Any, cust: Any, lines: list[Any], conf: dict[str, str], brand: str | None
) -> InvoiceDocument:
    if inv.number is None or inv.status == "draft":
        raise DocumentSourceError(f"invoice {inv.id} is a draft: finalize it first")
    supplier_gstin = inv.supplier_gstin or conf.get("supplier_gstin")
    if not supplier_gstin:
        raise DocumentSourceError(
            f"invoice {inv.id}: no supplier GSTIN in the ledger settings: load a catalog"
        )
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
