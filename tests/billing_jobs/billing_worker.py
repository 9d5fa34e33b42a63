"""Subprocess used by the crash and concurrency tests: waits for 'go' on stdin, then runs
run_billing against the ledger URL and prints the result as JSON."""

from __future__ import annotations

import json
import sys
from datetime import datetime

from billing_jobs.billing_run import run_billing
from billing_jobs.ledger import make_engine


def main() -> None:
    url, as_of, batch = sys.argv[1], datetime.fromisoformat(sys.argv[2]), int(sys.argv[3])
    engine = make_engine(url)
    with engine.connect() as conn:  # connect before 'ready' so kills land in billing work
        conn.exec_driver_sql("SELECT 1")
        conn.rollback()
    print("ready", flush=True)
    sys.stdin.readline()
    result = run_billing(engine, as_of, batch_size=batch)
    print(json.dumps({"invoices": result.invoices_created, "batches": result.batches}), flush=True)


if __name__ == "__main__":
    main()
