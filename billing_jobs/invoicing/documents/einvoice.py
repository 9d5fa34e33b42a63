"""E-invoicing helpers: the IRN hash and the QR code embedded in the PDF."""

from __future__ import annotations

import hashlib
import json

import qrcode
import qrcode.util

from billing_jobs.invoicing.documents.model import DocumentKind, InvoiceDocument
from billing_jobs.money import to_major_string

# Document type codes used by the Invoice Registration Portal.
DOC_TYPE_CODES = {DocumentKind.TAX_INVOICE: "INV", DocumentKind.CREDIT_NOTE: "CRN"}


def compute_irn(supplier_gstin: str, financial_year: str, doc_type: str, number: str) -> str:
    """IRN = SHA-256 hex of supplier GSTIN + financial year + document type + document number.

    The IRP treats document numbers case-insensitively, so the number is upper-cased first.
    """
    payload = f"{supplier_gstin.upper()}{financial_year}{doc_type.upper()}{number.upper()}"
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def irn_for(doc: InvoiceDocument) -> str:
    if doc.einvoice is not None and doc.einvoice.irn:
        return doc.einvoice.irn
    assert doc.supplier.gstin is not None  # enforced by InvoiceDocument
    return compute_irn(doc.supplier.gstin, doc.financial_year, DOC_TYPE_CODES[doc.kind], doc.number)


def qr_payload(doc: InvoiceDocument) -> str:
    """The IRP's signed QR when present, else the same fields as plain JSON."""
    if doc.einvoice is not None and doc.einvoice.signed_qr:
        return doc.einvoice.signed_qr
    main_hsn = max(doc.lines, key=lambda ln: ln.taxable_value_minor).sac_hsn
    return json.dumps(
        {
            "SellerGstin": doc.supplier.gstin,
            "BuyerGstin": doc.recipient.gstin or "URP",
            "DocNo": doc.number,
            "DocTyp": DOC_TYPE_CODES[doc.kind],
            "DocDt": doc.issue_date.strftime("%d/%m/%Y"),
            "TotInvVal": to_major_string(doc.totals.total_minor, doc.currency),
            "ItemCnt": len(doc.lines),
            "MainHsnCode": main_hsn,
            "Irn": irn_for(doc),
        },
        separators=(",", ":"),
    )


_EC = qrcode.constants.ERROR_CORRECT_M


def _byte_mode_version(n_bytes: int) -> int:
    """Smallest QR version holding one byte-mode segment of `n_bytes` at level M."""
    limits = qrcode.util.BIT_LIMIT_TABLE[_EC]
    for version in range(1, 41):
        count_bits = 8 if version < 10 else 16  # character-count field width for byte mode
        if 4 + count_bits + 8 * n_bytes <= limits[version]:
            return version
    raise ValueError(f"QR payload of {n_bytes} bytes does not fit in a QR code (level M)")


def qr_svg(data: str) -> str:
    """An SVG QR code (vector, so it stays sharp in the PDF).

    A fixed mask pattern is used: choosing the "best" of the eight masks is optional in the
    QR spec and cost ~0.2 s per code, more than typesetting the whole invoice. The payload is
    one byte-mode segment whose version is computed directly (qrcode's segment optimiser and
    `best_fit` re-encode the data, about a third of the cost). The SVG is one path of
    horizontal runs, which is far cheaper than qrcode's per-module SVG factories.
    """
    qr = qrcode.QRCode(
        version=_byte_mode_version(len(data.encode("utf-8"))),
        error_correction=_EC,
        border=0,
        mask_pattern=4,
    )
    qr.add_data(data, optimize=0)
    qr.make(fit=False)
    modules = qr.modules
    size = len(modules)
    quiet = 2
    parts = []
    for y, row in enumerate(modules):
        x = 0
        while x < size:
            if row[x]:
                start = x
                while x < size and row[x]:
                    x += 1
                parts.append(f"M{start + quiet} {y + quiet}h{x - start}v1h-{x - start}z")
            else:
                x += 1
    full = size + 2 * quiet
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {full} {full}" '
        f'width="{full}" height="{full}" shape-rendering="crispEdges">'
        f'<rect width="{full}" height="{full}" fill="#fff"/>'
        f'<path fill="#000" d="{"".join(parts)}"/></svg>'
    )
