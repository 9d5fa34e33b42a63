"""Where stored documents (invoice and credit-note PDFs) live and how they are written: the
one place that touches document storage, so another backend (object storage) replaces only
this module. Paths are `<root>/<FY>/<number>.pdf`."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

from billing_jobs.invoicing.documents.model import InvoiceDocument

_UNSAFE = re.compile(r"[^A-Za-z0-9-]")


def document_path(root: Path | str, doc: InvoiceDocument) -> Path:
    """`<root>/<FY>/<number>.pdf`, with '/' in the number (allowed by GST) made a '_' and
    anything else outside A-Z a-z 0-9 - refused by the model; names stay inside `root`."""
    name = _UNSAFE.sub("_", doc.number)
    return Path(root) / doc.financial_year / f"{name}.pdf"


def write_document(path: Path, data: bytes) -> None:
    """Write `data` at `path` atomically and durably (temporary file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Unique temporary name: two runs racing on the same document must not share it.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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
