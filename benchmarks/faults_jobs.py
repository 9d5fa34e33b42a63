"""The jobs `benchmarks/faults.py` kills: each runs in a forked process on its own engine and
dies by SIGKILL at its k-th kill point (a ledger statement, a commit, a gateway answer or an
SMTP hand-over); the operator's re-run is the same job in a new process, left to finish."""

from __future__ import annotations

import os
import signal
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, event

Tick = Callable[[str], None]  # called at each kill point with its kind
Job = Callable[[Engine, Tick], None]


@dataclass(frozen=True)
class World:
    """A copy of the demo world: its ledger, the simulated gateway's state, documents."""

    root: Path
    seed: int

    @property
    def ledger(self) -> Path:
        return self.root / "ledger.sqlite"

    @property
    def gateway(self) -> Path:
        return self.root / "gateway.sqlite"

    @property
    def documents(self) -> Path:
        return self.root / "invoices"

    @property
    def url(self) -> str:
        return f"sqlite:///{self.ledger}"


KillAt = tuple[str | None, int]  # die at the n-th kill point of this kind (None: of any kind)


def _child(world: World, job: Job, die_at: KillAt, report_fd: int) -> None:  # pragma: no cover
    from billing_jobs.ledger import make_engine

    engine = make_engine(world.url)
    seen: Counter[str | None] = Counter()

    def tick(kind: str) -> None:
        seen[None] += 1
        seen[kind] += 1
        if seen[die_at[0]] == die_at[1]:
            os.write(report_fd, f"killed {kind}\n".encode())
            os.kill(os.getpid(), signal.SIGKILL)

    event.listen(engine, "before_cursor_execute", lambda *_: tick("statement"))
    event.listen(engine, "commit", lambda *_: tick("commit"))
    job(engine, tick)
    engine.dispose()
    os.write(report_fd, f"done {seen[None]}\n".encode())


def run_in_process(world: World, job: Job, die_at: KillAt = (None, 0)) -> tuple[str | None, int]:
    """Run `job` in a forked process, SIGKILLed at the `die_at` kill point ((None, 0): never).
    Returns (the kind of kill point it died at or None, kill points passed)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.close(read_fd)
            _child(world, job, die_at, write_fd)
        except BaseException:
            traceback.print_exc()
            code = 3
        os._exit(code)
    os.close(write_fd)
    _, status = os.waitpid(pid, 0)
    said = os.read(read_fd, 64).decode().split()
    os.close(read_fd)
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
        return (said[1] if len(said) > 1 else "?"), die_at[1]
    if status != 0 or not said or said[0] != "done":
        raise RuntimeError(f"job process failed (wait status {status}); its traceback is above")
    return None, int(said[1])


def billing(as_of: datetime) -> Job:
    """The billing run as of `as_of`, small batches so a kill falls between them too."""

    def job(engine: Engine, tick: Tick) -> None:
        from billing_jobs.subscriptions.billing_run import run_billing

        run_billing(engine, as_of, batch_size=4)

    return job


def _gateway(world: World, now: datetime, tick: Tick | None):
    from simulation.gateway.simulated import SimulatedGateway

    gw = SimulatedGateway(world.seed, 1, state=world.gateway, clock=lambda: now)
    if tick is not None:
        charge = gw.charge

        def charged(*args, **kwargs):  # type: ignore[no-untyped-def]
            try:
                return charge(*args, **kwargs)
            finally:
                tick("gateway")  # the gateway decided; the ledger has not heard of it yet

        gw.charge = charged  # type: ignore[method-assign]
    return gw


def collection(world: World, now: datetime) -> Job:
    """Collection of open invoices and due retries, the real ledger path, at `now`."""

    def job(engine: Engine, tick: Tick) -> None:
        from billing_jobs.payments.collection import collect_open_invoices, run_due_retries

        gw = _gateway(world, now, tick)
        collect_open_invoices(engine, gw, "simulated", now)
        run_due_retries(engine, gw, now)
        gw.store.close()

    return job


def janitor(world: World, now: datetime) -> Job:
    """What an operator runs after a crashed collection: resolve attempts left unknown."""

    def job(engine: Engine, tick: Tick) -> None:
        from billing_jobs.payments.janitor import resolve_unknown

        gw = _gateway(world, now, None)
        resolve_unknown(engine, gw, now)
        gw.store.close()

    return job


def invoice_run(world: World, now: datetime) -> Job:
    """The invoice run: render, store and queue the mail of every invoice without a document."""

    def job(engine: Engine, tick: Tick) -> None:
        from billing_jobs.invoicing.documents.invoice_run import run_invoice_documents

        report = run_invoice_documents(engine, world.documents, now, workers=1, chunk_size=2)
        if report.errors:
            raise RuntimeError(f"invoice run errors: {report.errors[:3]}")

    return job


def mailer(smtp_url: str, now: datetime) -> Job:
    """The mailer: send every due queued mail to the SMTP server at `smtp_url`."""

    def job(engine: Engine, tick: Tick) -> None:
        from billing_jobs.invoicing.mail import SmtpSettings, send_due
        from billing_jobs.invoicing.mail.smtp import SmtpSession

        smtp = SmtpSettings.from_url(smtp_url)
        with SmtpSession(smtp) as session:

            def transport(_settings, message) -> None:  # type: ignore[no-untyped-def]
                tick("smtp-before")  # about to hand this message over
                session.send(message)
                tick("smtp-after")  # the server has it; the ledger does not know yet

            send_due(engine, now, smtp, limit=1000, transport=transport)

    return job
