"""Real subprocesses: SIGKILL billing runs at random points, run two billing processes at once;
afterwards every due period has exactly one invoice and numbers are gapless per FY."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from billing_jobs.billing_run import run_billing
from billing_jobs.ledger import schema as s
from billing_jobs.periods import add_months
from billing_jobs.seed import seed_subscriptions

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("billing_worker.py")


def _url(engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _spawn(engine, as_of: datetime, batch: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), _url(engine), as_of.isoformat(), str(batch)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _go(proc: subprocess.Popen) -> None:
    proc.stdin.write("go\n")
    proc.stdin.flush()


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
    kills, rounds, month = 0, 0, 0
    while kills < 20 and rounds < 80:
        rounds += 1
        month += 1
        as_of = add_months(start, month)
        proc = _spawn(ledger, as_of, batch=2)
        _go(proc)
        time.sleep(rng.uniform(0.0, 0.12))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
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
    procs = [_spawn(ledger, as_of, batch=5) for _ in range(2)]
    for p in procs:
        _go(p)
    outputs = [json.loads(p.communicate(timeout=120)[0].strip().splitlines()[-1]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(o["invoices"] for o in outputs) == 150 * 7
    assert _assert_ledger_consistent(ledger, sub_ids, start, as_of) == 150 * 7

    # One of two concurrent processes is killed mid-run; a rerun completes the work.
    later = datetime(2026, 8, 11, tzinfo=UTC)
    procs = [_spawn(ledger, later, batch=3) for _ in range(2)]
    for p in procs:
        _go(p)
    time.sleep(0.05)
    procs[0].send_signal(signal.SIGKILL)
    procs[1].communicate(timeout=120)
    procs[0].wait(timeout=60)
    run_billing(ledger, later)
    assert _assert_ledger_consistent(ledger, sub_ids, start, later) == 150 * 10
