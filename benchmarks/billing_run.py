"""Benchmark: bill N due subscriptions on SQLite with run_billing, next to a naive baseline
(one transaction and several ORM-style round trips per subscription) measured in the same run.

    .venv/bin/python benchmarks/billing_run.py [--n 100000] [--baseline-n 2000]

Prints subscriptions/s and peak RSS of each run (each runs in its own forked process so the
peaks do not mix). Goal: >= 5,000 subs/s and >= 10x the baseline."""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, insert, select, update

from billing_jobs.catalog import DEMO_CATALOG, load_catalog
from billing_jobs.catalog.snapshot import load_snapshot
from billing_jobs.invoicing.builder import CustomerTax
from billing_jobs.invoicing.numbering import allocate_numbers
from billing_jobs.ledger import make_engine, upgrade_ledger
from billing_jobs.ledger import schema as s
from billing_jobs.periods import financial_year
from billing_jobs.subscriptions.billing_run import run_billing
from billing_jobs.subscriptions.lifecycle import SubState, recurring_invoice
from billing_jobs.subscriptions.seed import seed_subscriptions

START = datetime(2026, 1, 10, 5, 30, tzinfo=UTC)
AS_OF = datetime(2026, 1, 11, tzinfo=UTC)
PLANS = ("scale-monthly", "growth-monthly", "starter-monthly")


def _prepare(path: Path, n: int) -> None:
    engine = upgrade_ledger(f"sqlite:///{path}")
    load_catalog(engine, DEMO_CATALOG, now=START)
    seed_subscriptions(engine, n, start=START, plans=PLANS)
    engine.dispose()


def naive_billing(engine: Engine, as_of: datetime) -> int:
    """The obvious loop: per due subscription, its own transaction and one query or insert
    per row (subscription, items, customer, number, invoice, each line, update)."""
    with engine.connect() as conn:
        catalog = load_snapshot(conn)
        ids = list(
            conn.execute(
                select(s.subscriptions.c.id).where(
                    s.subscriptions.c.status == "active",
                    s.subscriptions.c.next_action_at <= as_of,
                )
            ).scalars()
        )
        conn.rollback()
    created = 0
    for sid in ids:
        with engine.begin() as conn:
            sub = conn.execute(select(s.subscriptions).where(s.subscriptions.c.id == sid)).one()
            items = conn.execute(
                select(s.subscription_items.c.plan_id, s.subscription_items.c.quantity).where(
                    s.subscription_items.c.subscription_id == sid
                )
            ).all()
            cust = conn.execute(
                select(s.customers).where(s.customers.c.id == sub.customer_id)
            ).one()
            state = SubState(
                **{k: getattr(sub, k) for k in SubState.__dataclass_fields__ if k != "items"},
                items=[tuple(i) for i in items],
            )
            draft = recurring_invoice(
                state, catalog, CustomerTax(cust.state_code, cust.gstin, cust.tax_status), 0
            )
            fy = financial_year(draft.issued_at)
            (number,) = allocate_numbers(conn, catalog.invoice_prefix, fy, 1)
            inv_id = conn.execute(
                insert(s.invoices).returning(s.invoices.c.id),
                {
                    "customer_id": draft.customer_id,
                    "subscription_id": sid,
                    "kind": "recurring",
                    "status": "open",
                    "number": number,
                    "financial_year": fy,
                    "currency": draft.currency,
                    "period_start": draft.period_start,
                    "period_end": draft.period_end,
                    "issued_at": draft.issued_at,
                    "subtotal_minor": draft.subtotal_minor,
                    "taxable_minor": draft.taxable_minor,
                    "cgst_minor": draft.cgst_minor,
                    "sgst_minor": draft.sgst_minor,
                    "igst_minor": draft.igst_minor,
                    "tax_minor": draft.tax_minor,
                    "total_minor": draft.total_minor,
                    "amount_due_minor": draft.amount_due_minor,
                    "supplier_gstin": draft.supplier_gstin,
                    "customer_gstin": draft.customer_gstin,
                    "place_of_supply": draft.place_of_supply,
                    "tax_regime": draft.tax_regime,
                    "finalized_at": as_of,
                    "created_at": as_of,
                },
            ).scalar_one()
            for pos, line in enumerate(draft.lines):
                conn.execute(
                    insert(s.invoice_lines),
                    {
                        "invoice_id": inv_id,
                        "position": pos,
                        "kind": line.kind,
                        "description": line.description,
                        "plan_id": line.plan_id,
                        "sac": line.sac,
                        "quantity": line.quantity,
                        "amount_minor": line.amount_minor,
                        "taxable_minor": line.taxable_minor,
                        "tax_rate_bp": line.tax_rate_bp,
                        "cgst_minor": line.cgst_minor,
                        "sgst_minor": line.sgst_minor,
                        "igst_minor": line.igst_minor,
                        "period_start": line.period_start,
                        "period_end": line.period_end,
                    },
                )
            conn.execute(
                update(s.subscriptions)
                .where(s.subscriptions.c.id == sid)
                .values(
                    billed_period_start=state.current_period_start,
                    next_action_at=state.current_period_end,
                )
            )
            created += 1
    return created


def _child(kind: str, path: str, out) -> None:  # runs in a forked process
    engine = make_engine(f"sqlite:///{path}")
    t0, c0 = time.perf_counter(), time.process_time()
    if kind == "batched":
        n = run_billing(engine, AS_OF, batch_size=2000).invoices_created
    else:
        n = naive_billing(engine, AS_OF)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.put((n, seconds, peak_mb, cpu))


def _measure(kind: str, path: Path) -> tuple[int, float, float, float]:
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    proc = ctx.Process(target=_child, args=(kind, str(path), out))
    proc.start()
    result = out.get()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--baseline-n", type=int, default=2_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fast_db, naive_db = Path(tmp) / "batched.sqlite", Path(tmp) / "naive.sqlite"
        t0 = time.perf_counter()
        _prepare(fast_db, args.n)
        _prepare(naive_db, args.baseline_n)
        print(f"seeded {args.n:,} + {args.baseline_n:,} subscriptions in "
              f"{time.perf_counter() - t0:.1f}s (SQLite, WAL, synchronous=FULL)")  # fmt: skip
        n_fast, s_fast, mem_fast, cpu_fast = _measure("batched", fast_db)
        n_naive, s_naive, mem_naive, cpu_naive = _measure("naive", naive_db)
    rate_fast, rate_naive = n_fast / s_fast, n_naive / s_naive
    # Wall-clock rate is the figure that counts; CPU seconds show how much of the wall time
    # went to waiting (fsync, other processes on a shared machine).
    print(f"{'run':<26}{'subs':>9}{'wall s':>8}{'subs/s':>8}{'CPU s':>7}{'peak RSS MB':>12}")
    for name, n, sec, rate, cpu, mem in (
        ("run_billing (batched)", n_fast, s_fast, rate_fast, cpu_fast, mem_fast),
        ("naive per-subscription", n_naive, s_naive, rate_naive, cpu_naive, mem_naive),
    ):
        print(f"{name:<26}{n:>9,}{sec:>8.2f}{rate:>8,.0f}{cpu:>7.2f}{mem:>12.0f}")
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    speedup = rate_fast / rate_naive
    print(f"speedup {speedup:.1f}x; goals: >= 5,000 subs/s "
          f"[{'met' if rate_fast >= 5000 else 'NOT met'}], >= 10x baseline "
          f"[{'met' if speedup >= 10 else 'NOT met'}]")  # fmt: skip


if __name__ == "__main__":
    main()
