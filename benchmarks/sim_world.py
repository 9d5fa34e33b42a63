"""Benchmark: build simulated worlds of two sizes and extrapolate to the default demo world
(5,000 customers x 24 months), next to the 2-minute budget.

    .venv/bin/python benchmarks/sim_world.py [--small 100x6] [--large 300x12] [--seed 42]

Work grows with customer-months (every live customer is billed and charged each period), so
time ~= fixed + per_customer_month * customers * months; the two sizes give both terms."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from simulation.world import simulate

TARGET = (5000, 24)
BUDGET_S = 120.0


def _size(text: str) -> tuple[int, int]:
    c, m = text.lower().split("x")
    return int(c), int(m)


def _run(customers: int, months: int, seed: int) -> tuple[float, dict[str, int]]:
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        r = simulate(None, Path(d) / "run", customers=customers, months=months, seed=seed)
        return time.perf_counter() - t, r.counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--small", type=_size, default=(100, 6))
    ap.add_argument("--large", type=_size, default=(300, 12))
    ap.add_argument("--seed", type=int, default=42)
    a = ap.parse_args()
    print(f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f}")
    rows = []
    for c, m in (a.small, a.large):
        secs, counts = _run(c, m, a.seed)
        rows.append((c * m, secs))
        print(f"{c:>6} customers x {m:>3} months: {secs:7.1f} s  attempts={counts.get('attempts')}"
              f" invoices_paid={counts.get('invoices_paid')}")  # fmt: skip
    (x1, y1), (x2, y2) = rows
    per = (y2 - y1) / (x2 - x1) if x2 != x1 else y2 / x2
    fixed = max(0.0, y1 - per * x1)
    target = TARGET[0] * TARGET[1]
    est = fixed + per * target
    print(f"per customer-month: {per * 1000:.1f} ms, fixed: {fixed:.1f} s")
    print(f"estimated {TARGET[0]}x{TARGET[1]}: {est:.0f} s vs budget {BUDGET_S:.0f} s "
          f"(needs <= {BUDGET_S / target * 1000:.2f} ms per customer-month; "
          f"{est / BUDGET_S:.1f}x over)" if est > BUDGET_S else
          f"estimated {TARGET[0]}x{TARGET[1]}: {est:.0f} s, within the {BUDGET_S:.0f} s budget")  # fmt: skip


if __name__ == "__main__":
    main()
