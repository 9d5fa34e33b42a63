"""Reconciliation against the simulator's ground truth on a full-size world (issue #6): the
same comparison as tests/e2e/test_reconciliation_truth.py, which runs on a small world, on
the default demo world (5,000 customers x 24 months, seed 42) or any other size.

Builds the world in a temporary directory (simulator, every ingestion asset and the dbt build
through Dagster, as `paysight demo` does minus the ML assets), then derives each money
movement's expected status from `sim_truth` and the gateway's own state and compares it with
`marts.fct_reconciliation`. Prints one row per (causes, expected, actual) and exits non-zero
on any disagreement.

    .venv/bin/python benchmarks/recon_truth.py [--customers 5000] [--months 24] [--seed 42]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.demo_world import build_demo_world
from tests.e2e.recon_truth import (
    bank_holidays,
    compare,
    comparison_table,
    expected_statuses,
    gateway_charges,
    paid_out_ids,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--start", default="2025-01-01")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="paysight-recon-truth-"))
    try:
        t0 = time.perf_counter()
        world = build_demo_world(
            tmp,
            {"customers": args.customers, "months": args.months, "seed": args.seed,
             "start": args.start},
        )  # fmt: skip
        built_s = time.perf_counter() - t0
        if not world.success or world.checks_failed:
            sys.exit(f"the world did not build cleanly: failed checks {world.checks_failed}")
        expected = expected_statuses(
            gateway_charges(world.gateway_db),
            world.query("select * from sim_truth.settlement_discrepancies"),
            world.query("select * from sim_truth.fraud_transactions"),
            as_of=world.as_of,
            holidays=bank_holidays(),
            settled_ids=paid_out_ids(world.gateway_db, world.end, world.as_of),
        )
        recon = world.query("select recon_key, status from marts.fct_reconciliation")
        actual = dict(zip(recon.recon_key, recon.status, strict=True))
        disagreements = compare(actual, expected)
        print(
            f"world {args.customers} x {args.months} (seed {args.seed}) built in {built_s:.0f} s;"
            f" as of {world.as_of}: {len(actual)} money movements"
        )
        print(comparison_table(actual, expected).to_string(index=False))
        print(f"disagreements: {len(disagreements)}")
        for d in disagreements[:20]:
            print(" ", d)
        if disagreements:
            sys.exit(1)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
