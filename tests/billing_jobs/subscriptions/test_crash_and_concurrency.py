"""Real subprocesses: SIGKILL billing runs at random points, run two billing processes at once;
afterwards every due period has exactly one invoice and numbers are gapless per FY."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from billing_jobs.ledger import make_engine
from billing_jobs.ledger import schema as s
from billing_jobs.periods import add_months
from billing_jobs.subscriptions.billing_run import run_billing
from billing_jobs.subscriptions.seed import seed_subscriptions

# Forked children inherit the imported modules, so a worker starts in milliseconds; each one
# builds its own engine (nothing pooled is shared across the fork) and is a real OS process
# that SIGKILL stops dead, mid-transaction or not.
FORK = multiprocessing.get_context("fork")


def _worker(url: str, as_of: datetime, batch: int, start, out) -> None:  # pragma: no cover
    engine = make_engine(url)
    start.wait()
    result = run_billing(engine, as_of, batch_size=batch)
    out.put(result.invoices_created)
    engine.dispose()


def _spawn(engine, as_of: datetime, batch: int, start, out):
    url = engine.url.render_as_string(hide_password=False)
    proc = FORK.Process(target=_worker, args=(url, as_of, batch, start, out), daemon=True)
    proc.start()
    return proc


def _assert_ledger_consistent(engine, sub_ids, start: datetime, as_of: datetime) -> int:
    expected = []
    k = 0
    while add_months(start, k) <= as_of:
        expected.append(add_months(start, k))
        k += 1
    inv = s.invoices
    with engine.connect() as conn:
        rows = conn.execute(
            select(inv.c.subscription_id, inv.c.period_start, inv.c.number, inv.c.financial_year)
        ).all()
        seq = dict(
            conn.execute(
                select(s.invoice_sequences.c.financial_year, s.invoice_sequences.c.last_value)
            ).all()
        )
    periods: dict[int, list[datetime]] = {}
    for r in rows:
        periods.setdefault(r.subscription_id, []).append(r.period_start)
    for sid in sub_ids:
        assert sorted(periods.get(sid, [])) == expected, f"subscription {sid}"
    by_fy: dict[str, list[int]] = {}
    for r in rows:
        by_fy.setdefault(r.financial_year, []).append(int(r.number.rsplit("/", 1)[1]))
    for fy, numbers in by_fy.items():
        assert sorted(numbers) == list(range(1, len(numbers) + 1)), f"gap in FY {fy}"
        assert seq[fy] == len(numbers)
    return len(rows)


@pytest.mark.slow
def test_sigkill_billing_runs_at_random_points(ledger) -> None:
    start = datetime(2024, 1, 15, 4, 30, tzinfo=UTC)
    sub_ids = seed_subscriptions(
        ledger, 120, start=start, plans=("scale-monthly", "growth-monthly")
    )
    rng = random.Random(20260122)
    out = FORK.Queue()
    kills, rounds, month = 0, 0, 0
    while kills < 20 and rounds < 80:
        rounds += 1
        month += 1
        go = FORK.Event()
        proc = _spawn(ledger, add_months(start, month), 2, go, out)
        go.set()
        time.sleep(rng.uniform(0.0, 0.15))
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.join(timeout=60)
    assert kills >= 20
    final = add_months(start, month)
    run_billing(ledger, final, batch_size=7)
    total = _assert_ledger_consistent(ledger, sub_ids, start, final)
    assert total == len(sub_ids) * (month + 1)
    assert run_billing(ledger, final).invoices_created == 0


def test_two_billing_processes_at_once_stay_gapless(ledger) -> None:
    start = datetime(2025, 11, 10, 8, tzinfo=UTC)
    as_of = datetime(2026, 5, 11, tzinfo=UTC)  # Nov..Mar in FY 25-26, Apr..May in FY 26-27
    sub_ids = seed_subscriptions(ledger, 150, start=start, plans=("scale-monthly",))
    go, out = FORK.Event(), FORK.Queue()
    procs = [_spawn(ledger, as_of, 5, go, out) for _ in range(2)]
    go.set()
    created = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sum(created) == 150 * 7
    assert _assert_ledger_consistent(ledger, sub_ids, start, as_of) == 150 * 7

    # One of two concurrent processes is killed mid-run; a rerun completes the work.
    later = datetime(2026, 8, 11, tzinfo=UTC)
    go = FORK.Event()
    procs = [_spawn(ledger, later, 3, go, out) for _ in range(2)]
    go.set()
    time.sleep(0.05)
    os.kill(procs[0].pid, signal.SIGKILL)
    for p in procs:
        p.join(timeout=120)
    assert procs[0].exitcode == -signal.SIGKILL
    run_billing(ledger, later)
    assert _assert_ledger_consistent(ledger, sub_ids, start, later) == 150 * 10
