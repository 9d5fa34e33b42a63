"""The invoice run: render every finalized invoice and every credit note that has no
document yet in worker processes, store each PDF under ``<root>/<FY>/<number>.pdf`` and queue
its mail, exactly once.

Invoices are read in batches (three queries per batch), rendered in chunks by a process pool
sized to the cores, and each chunk is recorded in one transaction: its ``invoice_documents``
rows and its outbox rows commit together. An invoice counts as done only once that
transaction commits, so a crash loses nothing (the next run renders the uncommitted ones
again, into identical bytes) and a re-run renders nothing twice.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, select

from billing_jobs.invoicing.documents.from_ledger import load_credit_note_documents, load_documents
from billing_jobs.invoicing.documents.render_worker import Rendered, Task, render_chunk, warm_up
from billing_jobs.invoicing.documents.storage import document_path
from billing_jobs.invoicing.mail import OutboxError, document_mail, queue_messages
from billing_jobs.invoicing.mail.outbox import check_address
from billing_jobs.ledger import schema as s
from billing_jobs.ledger.schema import credit_note_documents, invoice_documents
from billing_jobs.ledger.session import Target, engine_of

LANGS = frozenset({"en", "hi", "mr"})
# Below this many invoices a pool costs more to start (each worker imports Typst and loads
# the fonts, ~1 s) than it saves.
POOL_MIN_INVOICES = 100


class InvoiceRunError(ValueError):
    """Bad arguments to the invoice run (naive time, non-positive sizes)."""


@dataclass
class InvoiceRunReport:
    rendered: int = 0
    queued: int = 0
    skipped: int = 0  # rendered and stored, but not mailed (no address on the customer)
    errors: list[str] = field(default_factory=list)
    workers: int = 1


def _lang(locale: str | None) -> str:
    prefix = (locale or "en").split("_")[0]
    return prefix if prefix in LANGS else "en"


# Per kind of document: its ledger table, the table recording its stored PDF (and that
# table's key column), and the bulk loader of its printable documents.
_KINDS = {
    "invoice": (s.invoices, invoice_documents, "invoice_id", load_documents),
    "credit_note": (s.credit_notes, credit_note_documents, "credit_note_id",
                    load_credit_note_documents),
}  # fmt: skip
Todo = tuple[tuple[str, int], str | None, str | None]  # (kind, id), email, locale


def _todo(engine: Engine, limit: int | None) -> list[Todo]:
    """Invoices (numbered) and credit notes without a stored document, oldest first."""
    out: list[Todo] = []
    for kind, (table, stored, key, _) in _KINDS.items():
        if limit is not None and len(out) >= limit:
            break
        q = (
            select(table.c.id, s.customers.c.email, s.customers.c.locale)
            .join(s.customers, s.customers.c.id == table.c.customer_id)
            .where(table.c.number.is_not(None), table.c.id.not_in(select(stored.c[key])))
            .order_by(table.c.id)
        )
        if limit:
            q = q.limit(limit - len(out))
        with engine.connect() as conn:
            out += [((kind, int(i)), e, loc) for i, e, loc in conn.execute(q)]
    return out


def _chunks(
    engine: Engine,
    todo: list[Todo],
    root: Path,
    brand: str | None,
    read_batch: int,
    chunk_size: int,
    report: InvoiceRunReport,
) -> Iterator[list[Task]]:
    for i in range(0, len(todo), read_batch):
        batch = todo[i : i + read_batch]
        docs = {}
        for kind, (_, _, _, load) in _KINDS.items():
            ids = [k[1] for k, _, _ in batch if k[0] == kind]
            if not ids:
                continue
            with engine.connect() as conn:
                found, errors = load(conn, ids, brand=brand)
            docs.update(((kind, i), d) for i, d in found.items())
            report.errors.extend(errors.values())
        tasks = [
            Task(key, docs[key], _lang(locale), str(document_path(root, docs[key])), email)
            for key, email, locale in batch
            if key in docs
        ]
        for j in range(0, len(tasks), chunk_size):
            yield tasks[j : j + chunk_size]


def _record(
    engine: Engine,
    tasks: Sequence[Task],
    results: Sequence[Rendered],
    now: datetime,
    mail: bool,
    report: InvoiceRunReport,
) -> None:
    """One transaction per chunk: the documents and their mails commit together."""
    by_key = {t.key: t for t in tasks}
    ok = []
    for r in results:
        if r.error is not None:
            report.errors.append(r.error)
        else:
            ok.append(r)
    if not ok:
        return
    with engine.begin() as conn:
        new = []
        for kind, (_, stored, key, _) in _KINDS.items():
            mine = [r for r in ok if r.key[0] == kind]
            if not mine:
                continue
            # A concurrent run may have recorded some of these meanwhile (it wrote identical
            # bytes): theirs stand, and their mails were queued with theirs.
            already = set(
                conn.execute(
                    select(stored.c[key]).where(stored.c[key].in_([r.key[1] for r in mine]))
                ).scalars()
            )
            fresh = [r for r in mine if r.key[1] not in already]
            if fresh:
                conn.execute(
                    insert(stored),
                    [
                        {key: r.key[1], "number": by_key[r.key].doc.number,
                         "path": by_key[r.key].path, "sha256": r.sha256,
                         "lang": by_key[r.key].lang, "rendered_at": now}
                        for r in fresh
                    ],
                )  # fmt: skip
            new += fresh
        mails = [] if not mail else _mails(new, by_key, report)
        queue_messages(conn, mails, now=now)
    report.rendered += len(new)
    report.queued += len(mails)


def _mails(new: Sequence[Rendered], by_key: dict, report: InvoiceRunReport) -> list[Any]:
    mails = []
    for r in new:
        t = by_key[r.key]
        if not t.email:
            report.skipped += 1
            continue
        try:
            check_address(t.email)
        except OutboxError as exc:
            report.errors.append(f"{t.key[0].replace('_', ' ')} {t.key[1]}: stored but not "
                                 f"mailed: {exc}")  # fmt: skip
            continue
        mails.append(
            document_mail(t.doc, to=t.email, lang=t.lang, path=t.path, sha256=r.sha256 or "")
        )
    return mails


def _pool_size(workers: int | None, n: int, chunk_size: int) -> int:
    chunks = -(-n // chunk_size)
    if workers is None:
        if n < POOL_MIN_INVOICES:
            return 1
        workers = len(os.sched_getaffinity(0))
    return max(1, min(workers, chunks))


def run_invoice_documents(
    target: Target,
    root: Path | str,
    now: datetime,
    *,
    limit: int | None = None,
    mail: bool = True,
    brand: str | None = None,
    workers: int | None = None,
    chunk_size: int = 16,
    read_batch: int = 512,
) -> InvoiceRunReport:
    """Render every finalized invoice and credit note without a document, store it and queue
    it for mail.

    `workers=None` uses one process per core when there are at least `POOL_MIN_INVOICES`
    invoices (else renders in this process); `workers=1` never starts a pool. Safe to re-run
    after a crash or concurrently: an invoice is done once its chunk's transaction commits,
    and a document's mail has a dedupe key, so nothing is rendered or mailed twice.
    """
    if now.tzinfo is None:
        raise InvoiceRunError("`now` must be timezone-aware")
    if chunk_size < 1 or read_batch < 1 or (workers is not None and workers < 1):
        raise InvoiceRunError("workers, chunk_size and read_batch must be positive")
    engine = engine_of(target)
    todo = _todo(engine, limit)
    report = InvoiceRunReport(workers=_pool_size(workers, len(todo), chunk_size))
    chunks = _chunks(engine, todo, Path(root).resolve(), brand, read_batch, chunk_size, report)
    if report.workers == 1:
        for tasks in chunks:
            _record(engine, tasks, render_chunk(tasks), now, mail, report)
        return report
    # spawn, not fork: the parent holds database connections and Typst's threads.
    pool = ProcessPoolExecutor(
        report.workers, mp_context=multiprocessing.get_context("spawn"), initializer=warm_up
    )
    in_flight: dict[Future[list[Rendered]], list[Task]] = {}
    try:
        pending = iter(chunks)
        exhausted = False
        while True:
            # Two chunks per worker in flight: workers never wait while this process
            # reads the next batch or commits the last chunk.
            while not exhausted and len(in_flight) < 2 * report.workers:
                tasks = next(pending, None)
                if tasks is None:
                    exhausted = True
                else:
                    in_flight[pool.submit(render_chunk, tasks)] = tasks
            if not in_flight:
                break
            finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for fut in finished:
                tasks = in_flight.pop(fut)
                _record(engine, tasks, fut.result(), now, mail, report)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return report
