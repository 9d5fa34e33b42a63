"""A collection process for the crash test: interleaves charges, janitor runs and webhook
outcomes (duplicated, shuffled) against SQLite-backed store and gateway until it is killed."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from billing_jobs.payments.charging import (
    CollectionError,
    InvoiceCharge,
    SqliteAttemptStore,
    apply_gateway_outcome,
    collect_invoice,
    resolve_unknown_attempts,
)
from billing_jobs.payments.gateway import PaymentResult, PaymentStatus
from simulation.gateway.port import timeout_rate
from simulation.gateway.simulated import SimulatedGateway

T0 = datetime(2026, 5, 4, 6, 0, tzinfo=UTC)
SEED = 5


def open_world(state: Path, clock: list[datetime]) -> tuple[SimulatedGateway, SqliteAttemptStore]:
    gw = SimulatedGateway(
        SEED,
        1,
        state=state / "gateway.sqlite",
        clock=lambda: clock[0],
        timeouts=timeout_rate(SEED, 0.3),
    )
    return gw, SqliteAttemptStore(state / "attempts.sqlite")


def result_from_event(body: bytes) -> PaymentResult | None:
    event = json.loads(body)
    if not event["type"].startswith("payment_intent."):
        return None
    obj = event["data"]["object"]
    return PaymentResult(
        status=PaymentStatus(obj["status"]),
        gateway_payment_id=obj["id"],
        amount_minor=obj["amount"],
        currency=obj["currency"].upper(),
        decline_code=obj["decline_code"],
        idempotency_key=obj["metadata"].get("paysight_idempotency_key"),
    )


def main(state: Path, run: int, steps: int, final: bool) -> None:
    # Customers are billed again every third run, so there is always something to collect.
    invoices = [
        InvoiceCharge(**{**i, "invoice_id": f"{i['invoice_id']}_p{run // 3}"})
        for i in json.loads((state / "invoices.json").read_text())
    ]
    clock = [T0 + timedelta(days=2 * run)]
    gw, store = open_world(state, clock)
    rng = random.Random(run)
    print("ready", flush=True)
    late: list[bytes] = []
    # A SIGKILL at a chosen step, from inside: a crash at a random point of the work that does
    # not depend on how fast this machine is (the test also kills from outside at random times).
    die_at = int(os.environ.get("PAYSIGHT_TEST_DIE_AT_STEP", "-1"))
    for step in range(steps):
        if step == die_at:
            os.kill(os.getpid(), signal.SIGKILL)
        now = clock[0] = T0 + timedelta(days=2 * run, minutes=7 * step)
        action = (
            "janitor"
            if final
            else rng.choice(["collect", "collect", "collect", "janitor", "webhooks"])
        )
        if action == "collect":
            with contextlib.suppress(CollectionError):
                collect_invoice(store, gw, rng.choice(invoices), now)
        elif action == "janitor":
            resolve_unknown_attempts(store, gw, now, stale_after=timedelta(minutes=5))
        else:
            bodies = [d.body for d in gw.webhooks_due(now)] + late
            late = [b for b in bodies if rng.random() < 0.3]  # redelivered later, out of order
            bodies += [b for b in bodies if rng.random() < 0.3]  # duplicates
            rng.shuffle(bodies)
            for body in bodies:
                result = result_from_event(body)
                if result is not None:
                    apply_gateway_outcome(store, result, now)
    print("done", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "final")
