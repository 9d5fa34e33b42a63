"""Invoice documents: the input model, templates, amount in words, e-invoice IRN/QR and PDF."""

from billing_jobs.invoicing.documents.einvoice import compute_irn, irn_for, qr_payload
from billing_jobs.invoicing.documents.model import (
    DocumentError,
    DocumentKind,
    EInvoice,
    InvoiceDocument,
    Line,
    OriginalInvoice,
    Party,
    StateRef,
    Totals,
    fy_of,
)
from billing_jobs.invoicing.documents.render import RenderError, build_view, render_pdf
from billing_jobs.invoicing.documents.storage import document_path
from billing_jobs.invoicing.documents.templates import (
    TemplateError,
    available_versions,
    resolve_template,
)
from billing_jobs.invoicing.documents.words import amount_in_words, integer_in_words

__all__ = [
    "DocumentError",
    "DocumentKind",
    "EInvoice",
    "InvoiceDocument",
    "Line",
    "OriginalInvoice",
    "Party",
    "RenderError",
    "StateRef",
    "TemplateError",
    "Totals",
    "amount_in_words",
    "available_versions",
    "build_view",
    "compute_irn",
    "document_path",
    "fy_of",
    "integer_in_words",
    "irn_for",
    "qr_payload",
    "render_pdf",
    "resolve_template",
]
