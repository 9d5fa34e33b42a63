"""Where stored documents (invoice and credit-note PDFs) live and how they are written: the
one place that touches document storage, so another backend (object storage) replaces only
this module. Paths are `<root>/<FY>/<number>.pdf`."""

from __future__ import annotations

import os
import re
from pathlib import Path

from billing_jobs.invoicing.documents.model import InvoiceDocument
from billing_jobs.storage import write_atomic as write_document  # temp file, fsync, rename

_UNSAFE = re.compile(r"[^A-Za-z0-9-]")


def document_path(root: Path | str, doc: InvoiceDocument) -> Path:
    """`<root>/<FY>/<number>.pdf`, with '/' in the number (allowed by GST) made a '_' and
    anything else outside A-Z a-z 0-9 - refused by the model; names stay inside `root`."""
    name = _UNSAFE.sub("_", doc.number)
    return Path(root) / doc.financial_year / f"{name}.pdf"


def sync_folder(folder: Path) -> None:
    """Make renames in `folder` durable: before the ledger says a document is stored."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def store_document(path: Path, data: bytes) -> Path:
    """Write one document where it belongs and make it durable; returns the path."""
    write_document(path, data)
    sync_folder(path.parent)
    return path
