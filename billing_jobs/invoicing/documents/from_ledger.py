"""Ledger invoices and credit notes as printable documents: `load_documents` and
`load_credit_note_documents` map them onto `InvoiceDocument` in bulk (see `invoice_run` for
the run that renders, stores and mails them)."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from sqlalchemy import Connection, select

from billing_jobs.invoicing.documents.model import (
    DocumentKind,
    InvoiceDocument,
    Line,
    OriginalInvoice,
    Party,
    StateRef,
    Totals,
    fy_of,
)
from billing_jobs.ledger import schema as s
from billing_jobs.ledger.session import Target, write_conn
from billing_jobs.periods import ist_date
from billing_jobs.tax.gst import STATE_CODES

COUNTRY_NAMES = {"US": "United States", "GB": "United Kingdom", "SG": "Singapore",
                 "AE": "United Arab Emirates", "DE": "Germany", "AU": "Australia"}  # fmt: skip


class DocumentSourceError(ValueError):
    """A ledger invoice cannot be turned into a document (draft, missing supplier data...)."""


def _state(code: str) -> StateRef:
    return StateRef(name=STATE_CODES.get(code, code), code=code)


def _settings(conn: Any) -> dict[str, str]:
    rows = conn.execute(select(s.settings.c.key, s.settings.c.value)).all()
    return {k: v for k, v in rows}


def _rate(bp: int) -> Fraction:
    return Fraction(bp, 100)


def _rows_by_id(conn: Connection, table: Any, ids: Sequence[int]) -> dict[int, Any]:
    out: dict[int, Any] = {}
    for i in range(0, len(ids), _IN_CHUNK):
        chunk = list(ids[i : i + _IN_CHUNK])
        out.update((r.id, r) for r in conn.execute(select(table).where(table.c.id.in_(chunk))))
    return out


def _lines_by(conn: Connection, table: Any, parent: str, order: str, ids: Sequence[int]) -> dict:
    """Lines of many parents, grouped by parent id and in `order`."""
    out: dict[int, list[Any]] = {}
    for i in range(0, len(ids), _IN_CHUNK):
        chunk = list(ids[i : i + _IN_CHUNK])
        q = table.select().where(table.c[parent].in_(chunk))
        for ln in conn.execute(q.order_by(table.c[parent], table.c[order])):
            out.setdefault(ln._mapping[parent], []).append(ln)
    return out


def _one(target: Target, load: Any, doc_id: int, brand: str | None) -> InvoiceDocument:
    with write_conn(target) as conn:
        docs, errors = load(conn, [doc_id], brand=brand)
    if doc_id in errors:
        raise DocumentSourceError(errors[doc_id])
    return docs[doc_id]


def invoice_document(
    target: Target, invoice_id: int, *, brand: str | None = None
) -> InvoiceDocument:
    """The printable tax invoice for a finalized ledger invoice."""
    return _one(target, load_documents, invoice_id, brand)


def load_documents(
    conn: Connection, invoice_ids: Sequence[int], *, brand: str | None = None
) -> tuple[dict[int, InvoiceDocument], dict[int, str]]:
    """Documents for many invoices in three queries (invoices, their customers, their lines).

    Returns (documents by invoice id, error message by invoice id): one bad invoice (a draft,
    a malformed line) does not stop the others."""
    ids = list(dict.fromkeys(invoice_ids))
    conf = _settings(conn)
    invoices = _rows_by_id(conn, s.invoices, ids)
    lines_of = _lines_by(conn, s.invoice_lines, "invoice_id", "position", ids)
    customers = _rows_by_id(conn, s.customers, sorted({r.customer_id for r in invoices.values()}))
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


def _address(line: str, city: str, postal_code: str, country: str = "IN") -> tuple[str, ...]:
    """Printed address lines: street, 'City PIN', and the country when it is not India."""
    place = " ".join(p for p in (city.strip(), postal_code.strip()) if p)
    out = [p for p in (line.strip(), place) if p]
    if country and country.upper() != "IN":
        out.append(COUNTRY_NAMES.get(country.upper(), country.upper()))
    return tuple(out)


def _parties(inv: Any, cust: Any, conf: dict[str, str], what: str) -> tuple[Party, Party]:
    supplier_gstin = inv.supplier_gstin or conf.get("supplier_gstin")
    if not supplier_gstin:
        raise DocumentSourceError(
            f"{what}: no supplier GSTIN in the ledger settings: load a catalog"
        )
    supplier = Party(
        name=conf.get("supplier_name", "") or "Supplier",
        address=_address(
            conf.get("supplier_address", ""),
            conf.get("supplier_city", ""),
            conf.get("supplier_postal_code", ""),
        ),
        state=_state(supplier_gstin[:2]),
        gstin=supplier_gstin,
    )
    recipient = Party(
        name=cust.name,
        address=_address(cust.address_line, cust.city, cust.postal_code, cust.country),
        state=_state(cust.state_code),
        gstin=inv.customer_gstin,
    )
    return supplier, recipient


def _line(ln: Any, qty: int, intra: bool) -> Line:
    rate = _rate(ln.tax_rate_bp)
    return Line(
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
        discount_minor=int(ln.discount_minor),
    )


def _source_quantity(source: Any) -> int:
    return max(1, int(source.quantity)) if source is not None else 1


def _totals(row: Any) -> Totals:
    return Totals(
        taxable_minor=int(row.taxable_minor),
        cgst_minor=int(row.cgst_minor),
        sgst_minor=int(row.sgst_minor),
        igst_minor=int(row.igst_minor),
        round_off_minor=0,
        total_minor=int(row.taxable_minor + row.cgst_minor + row.sgst_minor + row.igst_minor),
    )


def _document(
    inv: Any, cust: Any, lines: list[Any], conf: dict[str, str], brand: str | None
) -> InvoiceDocument:
    if inv.number is None or inv.status == "draft":
        raise DocumentSourceError(f"invoice {inv.id} is a draft: finalize it first")
    supplier, recipient = _parties(inv, cust, conf, f"invoice {inv.id}")
    doc_lines = [
        _line(ln, max(1, int(ln.quantity)), ln.cgst_minor != 0 or ln.sgst_minor != 0)
        for ln in lines
    ]
    issued = ist_date(inv.issued_at)
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
        totals=_totals(inv),
        reverse_charge=bool(inv.reverse_charge),
        locale=cust.locale or "en_IN",
        brand=brand,
    )


def credit_note_document(
    target: Target, credit_note_id: int, *, brand: str | None = None
) -> InvoiceDocument:
    """The printable credit note (CGST Rule 53: the original invoice's number and date, the
    taxable value and tax reversed, place of supply, recipient) for a ledger credit note."""
    return _one(target, load_credit_note_documents, credit_note_id, brand)


def load_credit_note_documents(
    conn: Connection, credit_note_ids: Sequence[int], *, brand: str | None = None
) -> tuple[dict[int, InvoiceDocument], dict[int, str]]:
    """Documents for many credit notes (as `load_documents` for invoices)."""
    ids = list(dict.fromkeys(credit_note_ids))
    conf = _settings(conn)
    notes = _rows_by_id(conn, s.credit_notes, ids)
    lines_of = _lines_by(conn, s.credit_note_lines, "credit_note_id", "id", ids)
    invoices = _rows_by_id(conn, s.invoices, sorted({r.invoice_id for r in notes.values()}))
    customers = _rows_by_id(conn, s.customers, sorted({r.customer_id for r in notes.values()}))
    # A credited line shows the quantity of the invoice line it credits.
    src = sorted({ln.invoice_line_id for ls in lines_of.values() for ln in ls} - {None})
    sources = _rows_by_id(conn, s.invoice_lines, src)
    docs: dict[int, InvoiceDocument] = {}
    errors: dict[int, str] = {}
    for cn_id in ids:
        note = notes.get(cn_id)
        if note is None:
            errors[cn_id] = f"credit note {cn_id} does not exist"
            continue
        try:
            docs[cn_id] = _credit_document(
                note, invoices[note.invoice_id], customers[note.customer_id],
                lines_of.get(cn_id, []), conf, brand, sources,
            )  # fmt: skip
        except DocumentSourceError as exc:
            errors[cn_id] = str(exc)
        except ValueError as exc:
            errors[cn_id] = f"credit note {note.number}: {exc}"
    return docs, errors


def _credit_document(
    note: Any,
    inv: Any,
    cust: Any,
    lines: list[Any],
    conf: dict[str, str],
    brand: str | None,
    sources: dict[int, Any],
) -> InvoiceDocument:
    supplier, recipient = _parties(inv, cust, conf, f"credit note {note.number}")
    intra = inv.tax_regime == "intra"
    issued = ist_date(note.issued_at)
    return InvoiceDocument(
        kind=DocumentKind.CREDIT_NOTE,
        number=note.number,
        issue_date=issued,
        financial_year=fy_of(issued),
        supplier=supplier,
        recipient=recipient,
        place_of_supply=_state(inv.place_of_supply),
        currency=note.currency,
        lines=tuple(
            _line(ln, _source_quantity(sources.get(ln.invoice_line_id)), intra) for ln in lines
        ),
        totals=_totals(note),
        reverse_charge=bool(inv.reverse_charge),
        locale=cust.locale or "en_IN",
        original_invoice=OriginalInvoice(inv.number, ist_date(inv.issued_at)),
        brand=brand,
        notes=(note.memo,) if note.memo else (),
        reason=note.reason,
    )
