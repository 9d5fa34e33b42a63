"""What an invoice-run worker process does: render a chunk of documents and store the PDFs.

Kept apart from `invoice_run` so a spawned worker imports only the renderer (Typst, Babel,
qrcode), not SQLAlchemy and Alembic, which cost several CPU-seconds per worker.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from billing_jobs.invoicing.documents.model import InvoiceDocument
from billing_jobs.invoicing.documents.render import RenderError, render_pdf
from billing_jobs.invoicing.documents.templates import TemplateError


@dataclass(frozen=True, slots=True)
class Task:
    invoice_id: int
    doc: InvoiceDocument
    lang: str
    path: str
    email: str | None


@dataclass(frozen=True, slots=True)
class Rendered:
    invoice_id: int
    sha256: str | None
    error: str | None = None


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Unique temporary name: two runs racing on the same invoice must not share it.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    # The rename is durable only once the directory entry is: before the ledger says "done".
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def render_chunk(tasks: Sequence[Task]) -> list[Rendered]:
    """Render and store a chunk (runs in a worker process; touches no database)."""
    out: list[Rendered] = []
    folders: set[Path] = set()
    for t in tasks:
        try:
            pdf = render_pdf(t.doc, lang=t.lang)
        except (RenderError, TemplateError, ValueError) as exc:
            out.append(Rendered(t.invoice_id, None, f"invoice {t.invoice_id}: {exc}"))
            continue
        path = Path(t.path)
        _write_atomic(path, pdf)
        folders.add(path.parent)
        out.append(Rendered(t.invoice_id, hashlib.sha256(pdf).hexdigest()))
    for folder in folders:
        _fsync_dir(folder)
    return out


def warm_up() -> None:
    """Pool initializer: import Typst and build the compiler before the first real chunk."""
    from billing_jobs.invoicing.documents.sample import sample_invoice

    render_pdf(sample_invoice(1, 5))
