"""Bank settlement files from the simulated gateway's payouts (fees, GST on fees, T+2), with
deliberately injected discrepancies: missing, short-paid, duplicated and late lines."""

from __future__ import annotations

import csv
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from billing_jobs.money import exponent
from simulation.gateway import behaviour as sim_world
from simulation.population import IST

HEADER = ("settlement_id", "utr", "payment_id", "gross", "fee", "tax", "net", "settled_at",
          "currency")  # fmt: skip
KINDS = ("missing", "short_paid", "duplicated", "late")
RATES = {"missing": 0.004, "short_paid": 0.003, "duplicated": 0.003, "late": 0.005}


@dataclass(frozen=True)
class Discrepancy:
    payment_id: str
    settlement_id: str
    kind: str
    expected_net_minor: int
    bank_net_minor: int | None  # None: never in any bank file
    expected_settled_at: datetime
    bank_settled_at: datetime | None
    bank_copies: int
    file: str | None
    payment_created_at: datetime  # when the customer paid (the gateway's charge time)


@dataclass(frozen=True)
class Unsettled:
    """A charge with no injected discrepancy whose bank credit had not arrived when the world
    ended (paid out later, or not yet paid out at all): nothing is wrong with it yet."""

    payment_id: str
    payment_created_at: datetime
    in_ledger: bool  # charged for a ledger invoice (False: e.g. a fraud charge)
    currency: str
    expected_net_minor: int
    expected_settled_at: datetime  # when the gateway makes it available (T+2 working days)
    settlement_id: str | None  # its payout, when the gateway has made one


def major(minor: int, currency: str) -> str:
    """Exact major-unit text of an integer minor amount (what banks print)."""
    e = exponent(currency)
    if e == 0:
        return str(minor)
    q, r = divmod(minor, 10**e)
    return f"{q}.{r:0{e}d}"


def _lines(gateway_db: Path) -> list[sqlite3.Row]:
    conn = sqlite3.connect(gateway_db)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(
            "select b.source_id payment_id, b.amount_minor gross, b.fee_minor fee,"
            " b.fee_tax_minor tax, b.net_minor net, b.currency, p.id settlement_id, p.utr,"
            " p.arrival_at, s.created_at payment_created_at,"
            " s.invoice_id is not null in_ledger"
            " from sim_balance_txns b join sim_payouts p on p.id = b.payout_id"
            " join sim_payments s on s.id = b.source_id"
            " where b.kind = 'charge' order by p.arrival_at, p.id, b.source_id"
        ).fetchall()
    finally:
        conn.close()


def _assign(seed: int, rows: list[sqlite3.Row]) -> dict[str, str]:
    """Which payment gets which discrepancy: a deterministic draw per payment, and at least one
    of each kind on a ledger payment whenever there are enough lines, so every kind can be
    tested (on a charge the ledger never made, missing_in_ledger would hide it)."""
    kinds: dict[str, str] = {}
    for r in rows:
        u = sim_world.uniform(seed, "recon", r["payment_id"])
        acc = 0.0
        for k in KINDS:
            acc += RATES[k]
            if u < acc:
                kinds[r["payment_id"]] = k
                break
    free = [r["payment_id"] for r in rows if r["payment_id"] not in kinds and r["in_ledger"]]
    on_ledger = {
        kinds[r["payment_id"]] for r in rows if r["in_ledger"] and r["payment_id"] in kinds
    }
    for i, k in enumerate(KINDS):
        if k not in on_ledger and len(free) > len(KINDS):
            pick = int(sim_world.uniform(seed, "recon-force", k) * (len(free) - 1))
            pid = free.pop(min(pick, len(free) - 1 - i))
            kinds[pid] = k
    return kinds


def write_bank_files(
    gateway_db: Path, bank_dir: Path, seed: int, until: datetime
) -> tuple[list[Path], list[Discrepancy]]:
    """One CSV per settlement day (IST) up to `until`; returns the files and the discrepancies."""
    rows = [r for r in _lines(gateway_db) if r["arrival_at"] <= until.timestamp()]
    kinds = _assign(seed, rows)
    files: dict[str, list[tuple]] = {}
    truth: list[Discrepancy] = []
    for r in rows:
        pid, cur = r["payment_id"], r["currency"]
        settled = datetime.fromtimestamp(r["arrival_at"], UTC)
        kind = kinds.get(pid)
        net, when, copies = r["net"], settled, 1
        if kind == "missing":
            copies = 0
        elif kind == "short_paid":
            short = max(100, (r["net"] * 2) // 100)  # the bank credited 2% (at least ₹1) less
            net = max(0, r["net"] - short)
        elif kind == "duplicated":
            copies = 2
        elif kind == "late":
            when = settled + timedelta(days=3 + int(sim_world.uniform(seed, "late", pid) * 9))
            if when > until:
                copies = 0  # so late it has not arrived by the end of the world
        day = when.astimezone(IST).date().isoformat()
        name = f"settlement_{day}.csv"
        line = (r["settlement_id"], r["utr"], pid, major(r["gross"], cur), major(r["fee"], cur),
                major(r["tax"], cur), major(net, cur), when.astimezone(IST).isoformat(), cur)  # fmt: skip
        for _ in range(copies):
            files.setdefault(name, []).append(line)
        if kind:
            truth.append(Discrepancy(pid, r["settlement_id"], kind, r["net"],
                                     net if copies else None, settled,
                                     when if copies else None, copies,
                                     name if copies else None,
                                     datetime.fromtimestamp(r["payment_created_at"], UTC)))  # fmt: skip
    bank_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in sorted(files):
        path = bank_dir / name
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(HEADER)
            w.writerows(sorted(files[name], key=lambda x: (x[7], x[0], x[2])))
        written.append(path)
    return written, truth


def unsettled_payments(
    gateway_db: Path, until: datetime, discrepancies: list[Discrepancy]
) -> list[Unsettled]:
    """Succeeded charges without an injected discrepancy that the bank had not credited by
    `until` (their payout arrives later or does not exist yet), in charge-time order."""
    injected = {d.payment_id for d in discrepancies}
    conn = sqlite3.connect(gateway_db)
    try:
        rows = conn.execute(
            "select s.id, s.created_at, s.invoice_id is not null, b.currency, b.net_minor,"
            " b.available_on, p.id from sim_balance_txns b"
            " join sim_payments s on s.id = b.source_id"
            " left join sim_payouts p on p.id = b.payout_id"
            " where b.kind = 'charge' and (p.id is null or p.arrival_at > ?)"
            " order by s.created_at, s.id",
            (until.timestamp(),),
        ).fetchall()
    finally:
        conn.close()
    return [
        Unsettled(pid, datetime.fromtimestamp(created, UTC), bool(ledger), cur, net,
                  datetime.fromtimestamp(available, UTC), payout)
        for pid, created, ledger, cur, net, available, payout in rows
        if pid not in injected
    ]  # fmt: skip
