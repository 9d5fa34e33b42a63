"""Fault figures (issue #19 item 6): SIGKILL each billing job at random points of a small demo
world, re-run it as an operator would, and count what the crashes broke.

    .venv/bin/python benchmarks/faults.py [--kills-per-job 20] [--seed 7] [--customers 40]
        [--months 3] [--jobs billing,collection,invoice_run,mailer,webhooks] [--keep]

Jobs: the billing run, collection of open invoices (the real ledger path, simulated gateway),
the invoice run (PDF documents), the mailer (to a real aiosmtpd server on 127.0.0.1 started
here) and the webhook receiver under load. Prints one table (job, runs, kills, duplicate
invoices, numbering gaps, double charges, acknowledged-but-lost events, duplicate mails) and a
total row; exits 1 when any count is not zero. Every as-of time is derived from the world's
end date and passed to the jobs explicitly.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sqlite3
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import faults_jobs as jobs
from benchmarks.faults_check import (
    COLUMNS,
    Faults,
    charge_faults,
    invoice_faults,
    mail_faults,
    webhook_faults,
)

JOBS = ("billing", "collection", "invoice_run", "mailer", "webhooks")
STEP = timedelta(days=5)  # between rounds: a few subscriptions come due each time


@dataclass
class Row:
    """One job's line of the table."""

    job: str
    runs: int = 0
    kills: int = 0
    faults: Faults = field(default_factory=Faults)
    points: Counter[str] = field(default_factory=Counter)  # kills by kind of kill point
    notes: list[str] = field(default_factory=list)


def build_template(base: Path, customers: int, months: int, seed: int) -> tuple[Path, datetime]:
    """The demo world, built once by the simulator; each job gets its own copy. Returns the
    directory and the instant its history ends (the first as-of)."""
    from simulation.world import simulate

    built = simulate(None, base / "template", customers=customers, months=months, seed=seed,
                     start="2025-01-01", overwrite=True)  # fmt: skip
    end = datetime(built.end.year, built.end.month, built.end.day, 6, tzinfo=UTC)
    return base / "template", end


def copy_world(template: Path, dest: Path, seed: int) -> tuple[jobs.World, int]:
    """A fresh copy of the world, and the first invoice id the benchmark will create."""
    shutil.copytree(template, dest)
    conn = sqlite3.connect(dest / "ledger.sqlite")
    try:
        first = (conn.execute("select max(id) from invoices").fetchone()[0] or 0) + 1
    finally:
        conn.close()
    return jobs.World(dest, seed), first


class Killer:
    """Runs a job until a seeded random kill point SIGKILLs it, then re-runs it to the end."""

    def __init__(self, world: jobs.World, rng: random.Random, row: Row,
                 special: str | None = None) -> None:  # fmt: skip
        self.world, self.rng, self.row, self.special = world, rng, row, special
        self.work = 40  # kill points of the last whole run (first guess)

    def run(self, job: jobs.Job) -> None:
        """A run nobody kills (setup, or the operator's re-run)."""
        self.row.runs += 1
        jobs.run_in_process(self.world, job)

    def kill(self, job: jobs.Job) -> bool:
        """Run with a kill point uniform over 1.5 times the last whole run's kill points (so
        some runs finish), or (one run in three) right after the k-th answer of the job's
        `special` point (a gateway charge, an SMTP hand-over: the riskiest instants); on a
        kill, re-run to completion. True when it was killed."""
        self.row.runs += 1
        die_at: jobs.KillAt = (None, self.rng.randint(1, max(2, int(1.5 * self.work))))
        if self.special is not None and self.rng.random() < 1 / 3:
            die_at = (self.special, self.rng.randint(1, 3))
        killed, seen = jobs.run_in_process(self.world, job, die_at)
        if killed is None:
            self.work = max(4, seen)
            return False
        self.row.kills += 1
        self.row.points[killed] += 1
        self.run(job)
        return True


def _rounds(n: int, row: Row, one_round: Callable[[int], None]) -> None:
    for rnd in range(20 * n + 20):
        if row.kills >= n:
            return
        one_round(rnd)
    raise RuntimeError(f"{row.job}: only {row.kills} kills in {20 * n + 20} rounds")


def _worst(a: Faults, b: Faults) -> Faults:
    return Faults(*(max(getattr(a, c), getattr(b, c)) for c in COLUMNS))


def ledger_job(name: str, world: jobs.World, first: int, start: datetime, n: int,
               rng: random.Random, smtp: SmtpServer | None = None) -> Row:  # fmt: skip
    """Kill `name` (billing, collection, invoice_run or mailer) n times, one round per STEP."""
    row = Row(name)
    special = {"collection": "gateway", "mailer": "smtp-after"}.get(name)
    k = Killer(world, rng, row, special)
    seen = Faults()

    def one_round(rnd: int) -> None:
        nonlocal seen
        as_of = start + rnd * STEP
        if name == "billing":
            k.kill(jobs.billing(as_of))
        else:
            k.run(jobs.billing(as_of))
        if name == "collection":
            now = as_of + timedelta(hours=1)
            if k.kill(jobs.collection(world, now)):
                k.run(jobs.janitor(world, now + timedelta(hours=1)))
                k.run(jobs.collection(world, now + timedelta(hours=1)))
            k.run(jobs.janitor(world, as_of + timedelta(days=3)))  # UPI settled by then
        if name in ("invoice_run", "mailer"):
            render = jobs.invoice_run(world, as_of + timedelta(hours=1))
            (k.kill if name == "invoice_run" else k.run)(render)
        if name == "mailer":
            assert smtp is not None
            send = as_of + timedelta(hours=2)
            if k.kill(jobs.mailer(smtp.url, send)):
                k.run(jobs.mailer(smtp.url, send + timedelta(minutes=20)))  # past the lease
        found = invoice_faults(world.ledger) + charge_faults(world.ledger, world.gateway, first)
        if smtp is not None:
            found = found + mail_faults(smtp.message_ids())
        seen = _worst(seen, found)

    _rounds(n, row, one_round)
    row.faults = seen
    row.notes += _after_notes(name, world, smtp)
    return row


def _after_notes(name: str, world: jobs.World, smtp: SmtpServer | None) -> list[str]:
    """What the counts do not show: work left for an operator after the last re-run."""
    conn = sqlite3.connect(world.ledger)
    try:
        due = conn.execute(
            "select count(*) from invoices i left join invoice_documents d on d.invoice_id = i.id "
            "where i.number is not null and d.invoice_id is null"
        ).fetchone()[0]
        unknown = [r[0] for r in conn.execute(
            "select message_id from document_deliveries where status = 'unknown'")]  # fmt: skip
    finally:
        conn.close()
    notes = []
    if name in ("invoice_run", "mailer"):
        notes.append(f"{name}: {due} numbered invoice(s) without a document after the re-runs")
    if name == "mailer" and smtp is not None:
        delivered = set(smtp.message_ids())
        got = sum(1 for m in unknown if m in delivered)
        notes.append(
            f"mailer: {len(unknown)} mail(s) left 'unknown' ({got} of them reached the SMTP "
            "server): the sender died between claiming and recording them, and by design they "
            "are not resent automatically; an operator checks the relay log and uses resend()"
        )
    return notes


class SmtpServer:
    """aiosmtpd on 127.0.0.1, recording the Message-ID of every message it accepts."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        from benchmarks.faults_webhooks import _free_port

        self._ids: list[str] = []
        self._lock = threading.Lock()
        self.port = _free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}?from=billing@paysight.test"

    async def handle_DATA(self, server, session, envelope) -> str:
        import email

        msg = email.message_from_bytes(envelope.content)
        with self._lock:
            self._ids.append(str(msg["Message-ID"]))
        return "250 OK"

    def message_ids(self) -> list[str]:
        with self._lock:
            return list(self._ids)

    def stop(self) -> None:
        self._controller.stop()


def load_landed(landing: Path, warehouse: Path, as_of: datetime) -> None:
    """The raw_webhook_events load (incremental, by the landing cursor) into `warehouse`."""
    from ingestion.landing_loads import load_webhook_events
    from ingestion.warehouse import connect

    con = connect(warehouse)
    try:
        report = load_webhook_events(landing, con, as_of)
    finally:
        con.close()
    if report.quarantined:
        raise RuntimeError(f"{report.quarantined} landed event(s) quarantined by the load")


def webhook_job(base: Path, n: int, rng: random.Random) -> Row:
    from benchmarks.faults_webhooks import Receiver, kill_under_load

    row = Row("webhooks")
    landing = base / "landing"
    landing.mkdir(parents=True)
    rx = Receiver(landing, base / "receiver.log")
    acked: set[str] = set()
    again = 0
    warehouse = base / "warehouse.duckdb"
    try:
        for rnd in range(n):
            again += kill_under_load(rx, rng, rnd, acked)
            row.runs += 2
            row.kills += 1
            # The receiver stamps events with its own clock, so the load's as-of is now.
            load_landed(landing, warehouse, datetime.now(UTC))
    finally:
        rx.stop()
    row.faults = webhook_faults(acked, landing, warehouse)
    row.notes.append(
        f"webhooks: {len(acked)} events acknowledged, {again} of them re-delivered after a kill"
    )
    return row


def run_faults(base: Path, *, kills: int, seed: int, customers: int = 40, months: int = 3,
               selected: tuple[str, ...] = JOBS) -> list[Row]:  # fmt: skip
    """Every selected job killed `kills` times on its own copy of one small world."""
    template, start = build_template(base, customers, months, seed)
    rows = []
    smtp = SmtpServer() if "mailer" in selected else None
    try:
        for i, name in enumerate(selected):
            rng = random.Random(seed * 1000 + i)
            if name == "webhooks":
                rows.append(webhook_job(base / name, kills, rng))
                continue
            world, first = copy_world(template, base / name, seed)
            rows.append(ledger_job(name, world, first, start, kills, rng,
                                   smtp if name == "mailer" else None))  # fmt: skip
    finally:
        if smtp is not None:
            smtp.stop()
    return rows


def table(rows: list[Row]) -> str:
    """The printed table, with a total row."""
    total = Row("total")
    for r in rows:
        total.runs += r.runs
        total.kills += r.kills
        total.faults = total.faults + r.faults
    head = ("job", "runs", "kills", *COLUMNS)
    lines = [head]
    for r in [*rows, total]:
        lines.append(
            (r.job, str(r.runs), str(r.kills), *(str(getattr(r.faults, c)) for c in COLUMNS))
        )
    widths = [max(len(x[i]) for x in lines) for i in range(len(head))]
    out = [
        " | ".join(
            x.ljust(w) if i == 0 else x.rjust(w)
            for i, (x, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    ]
    out.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills-per-job", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--customers", type=int, default=40)
    parser.add_argument("--months", type=int, default=3)
    parser.add_argument("--jobs", default=",".join(JOBS))
    parser.add_argument("--keep", action="store_true", help="keep the worlds' directory")
    args = parser.parse_args(argv)
    selected = tuple(j.strip() for j in args.jobs.split(",") if j.strip())
    unknown = sorted(set(selected) - set(JOBS))
    if unknown or not selected or len(set(selected)) != len(selected):
        parser.error(f"--jobs: unknown or repeated job(s) {unknown or selected}; pick from {JOBS}")
    if args.kills_per_job < 1 or args.customers < 1 or args.months < 1:
        parser.error("--kills-per-job, --customers and --months must be positive")
    base = Path(tempfile.mkdtemp(prefix="paysight-faults-"))
    try:
        rows = run_faults(base, kills=args.kills_per_job, seed=args.seed,
                          customers=args.customers, months=args.months, selected=selected)  # fmt: skip
    finally:
        if args.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    print(table(rows))
    for r in rows:
        points = ", ".join(f"{k} {v}" for k, v in sorted(r.points.items()))
        if points:
            print(f"{r.job}: kills by kill point: {points}")
        for note in r.notes:
            print(note)
    return 1 if any(r.faults.total() for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
