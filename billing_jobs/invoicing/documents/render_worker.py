"""What an invoice-run worker process does: render a chunk of documents and store the PDFs.

Kept apart from `invoice_run` so a spawned worker imports only the renderer (Typst, Babel,
qrcode), not SQLAlchemy and Alembic, which cost several CPU-seconds per worker.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from billing_jobs.invoicing.documents.model import InvoiceDocument
from billing_jobs.invoicing.documents.render import RenderError, render_pdf
from billing_jobs.invoicing.documents.storage import sync_folder, write_document
from billing_jobs.invoicing.documents.templates import TemplateError


@dataclass(frozen=True, slots=True)
class Task:
    """One document to render: `key` is ("invoice" | "credit_note", ledger id)."""

    key: tuple[str, int]
    doc: InvoiceDocument
    lang: str
    path: str
    email: str | None


@dataclass(frozen=True, slots=True)
class Rendered:
    key: tuple[str, int]
    sha256: str | None
    error: str | None = None


def render_chunk(tasks: Sequence[Task]) -> list[Rendered]:
    """Render and store a chunk (runs in a worker process; touches no database)."""
    out: list[Rendered] = []
    folders: set[Path] = set()
    for t in tasks:
        try:
            pdf = render_pdf(t.doc, lang=t.lang)
        except (RenderError, TemplateError, ValueError) as exc:
            out.append(Rendered(t.key, None, f"{t.key[0].replace('_', ' ')} {t.key[1]}: {exc}"))
            continue
        path = Path(t.path)
        write_document(path, pdf)
        folders.add(path.parent)
        out.append(Rendered(t.key, hashlib.sha256(pdf).hexdigest()))
    for folder in folders:
        sync_folder(folder)
    return out


def warm_up() -> None:
    """Pool initializer: import Typst and build the compiler before the first real chunk."""
    from billing_jobs.invoicing.documents.sample import sample_invoice

    render_pdf(sample_invoice(1, 5))
