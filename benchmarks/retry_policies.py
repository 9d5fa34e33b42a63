"""Replay the same failed payments of a simulated world under fixed, exponential and smart retries.

Usage: python benchmarks/retry_policies.py [--seed 99] [--train-seed 1099] [--customers 600] [--months 6]

Both smart scorers learn from a DIFFERENT seed's world where retries were made at random times:
`smart` uses a success-rate table per (decline code, day-of-month bucket, hours since the last
failure bucket); `smart-model` uses the retry-timing model (ml.retry) trained on the same
exploratory retries, registered in a temporary MLflow store as `retry_timing` with alias
champion and loaded back exactly as the payments jobs load it
(orchestration.defs.payments.smart_policy). Fixed (Kill Bill 8/8/8 days) is the baseline the
others are compared against.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from billing_jobs.payments.gateway import PaymentResult, PaymentStatus
from billing_jobs.payments.retries import (
    ExponentialPolicy,
    FixedPolicy,
    RetryContext,
    RetryPolicy,
    SmartPolicy,
)
from simulation.gateway.simulated import SimulatedGateway, _add_month

START = datetime(2026, 1, 1, tzinfo=UTC)
SETTLE = timedelta(days=2)  # long enough for any pending UPI payment to resolve


@dataclass
class Invoice:
    invoice_id: str
    customer: str
    pm: str
    mandate: bool
    amount_minor: int
    billed_at: datetime
    method: str = "unknown"
    issuer: str = "unknown"


@dataclass
class Outcome:
    invoice_id: str = ""
    customer: str = ""
    amount_minor: int = 0
    recovered: bool = False
    days_to_recovery: float = 0.0
    retries: int = 0


def _token(method: str, issuer: str, i: int) -> str:
    if method == "card":
        return f"tok_card_{issuer}_visa_{4000 + i % 5000:04d}_12_2031"
    if method == "upi":
        return f"tok_upi_mandate_{issuer}"  # subscriptions on UPI are AutoPay mandates
    return f"tok_{method}_{issuer}"


def _final(gw: SimulatedGateway, r: PaymentResult, at: datetime) -> PaymentResult:
    if r.status is PaymentStatus.PENDING and r.gateway_payment_id:
        return gw.fetch_payment(r.gateway_payment_id, now=at + SETTLE)
    return r


class World:
    """One seeded business billed monthly; `run` charges every invoice and retries failures."""

    def __init__(self, seed: int, customers: int, months: int) -> None:
        self.seed, self.months = seed, months
        self.gw = SimulatedGateway(seed, customers)
        self.people = []
        for i, c in enumerate(self.gw.customers(START)):
            cid = self.gw.create_customer(
                email=f"{c.customer_id}@example.in", now=START
            ).gateway_customer_id
            pm = self.gw.attach_payment_method(cid, _token(c.method, c.issuer, i)).token
            self.people.append((cid, pm, c))

    def run(self, retry: Callable[[Invoice, PaymentResult, datetime], Outcome]) -> list[Outcome]:
        # Every policy sees exactly the same invoices and first attempts: billing does not stop
        # for a lost customer here, so the failed payments being replayed are identical.
        out: list[Outcome] = []
        for period in range(self.months):
            for cid, pm, c in self.people:
                at = _add_month(c.signup, period, c.anchor_day)
                inv = Invoice(
                    f"in_{self.seed}_{cid}_{period}", cid, pm, c.method == "upi", c.amount_minor,
                    at, c.method, c.issuer,
                )  # fmt: skip
                first = self.charge(inv, 1, at)
                if first.succeeded:
                    continue
                o = retry(inv, first, at)
                o.invoice_id, o.customer, o.amount_minor = (
                    inv.invoice_id,
                    inv.customer,
                    inv.amount_minor,
                )
                out.append(o)
        return out

    def charge(self, inv: Invoice, attempt: int, at: datetime) -> PaymentResult:
        r = self.gw.charge(
            inv.customer, inv.pm, inv.amount_minor, "INR", f"{inv.invoice_id}-a{attempt}",
            metadata={"invoice_id": inv.invoice_id}, now=at,
        )  # fmt: skip
        return _final(self.gw, r, at)


def replay(world: World, policy: RetryPolicy) -> list[Outcome]:
    def retry(inv: Invoice, first: PaymentResult, failed_at: datetime) -> Outcome:
        known = {"method": inv.method, "issuer": inv.issuer}  # what the ledger knows of the method
        ctx = RetryContext(inv.invoice_id, "simulated", first.decline_code, failed_at, failed_at, 1,
                           inv.amount_minor, "INR", mandate=inv.mandate, features=known)  # fmt: skip
        o = Outcome()
        while True:
            d = policy.next_attempt(ctx)
            if d.at is None:
                return o
            o.retries += 1
            r = world.charge(inv, ctx.attempts_made + 1, d.at)
            if r.succeeded:
                o.recovered, o.days_to_recovery = True, (d.at - failed_at).total_seconds() / 86400
                return o
            ctx = RetryContext(inv.invoice_id, "simulated", r.decline_code or ctx.decline_code, failed_at,
                               d.at, ctx.attempts_made + 1, inv.amount_minor, "INR", mandate=inv.mandate,
                               features=known)  # fmt: skip

    return world.run(retry)


# -- the learned scorer ----------------------------------------------------------------------
DOM_BUCKETS = ((1, 2), (3, 5), (6, 10), (11, 20), (21, 26), (27, 31))
HOUR_BUCKETS = (6, 24, 72, 168, 10_000)


def dom_bucket(day: int) -> int:
    return next(i for i, (lo, hi) in enumerate(DOM_BUCKETS) if lo <= day <= hi)


def hour_bucket(hours: float) -> int:
    return next(i for i, edge in enumerate(HOUR_BUCKETS) if hours < edge)


class RateTable:
    """P(success) per (code, day-of-month bucket, hours bucket), backing off to (code, dom) and
    (code) when a cell is thin; Laplace-smoothed."""

    def __init__(self) -> None:
        self.cells: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])

    def add(self, code: str, at: datetime, hours: float, success: bool) -> None:
        for key in (
            (code, dom_bucket(at.day), hour_bucket(hours)),
            (code, dom_bucket(at.day)),
            (code,),
            (),
        ):
            cell = self.cells[key]
            cell[0] += success
            cell[1] += 1

    def __call__(self, features: Mapping[str, Any], offset_hours: float) -> float:
        code = features["decline_code"]
        keys = ((code, dom_bucket(features["day_of_month"]), hour_bucket(offset_hours)),
                (code, dom_bucket(features["day_of_month"])), (code,), ())  # fmt: skip
        for key in keys:
            wins, n = self.cells.get(key, (0, 0))
            if n >= 15:
                return (wins + 1) / (n + 2)
        return 0.5


IST = ZoneInfo("Asia/Kolkata")


def train_scorer(
    seed: int, customers: int, months: int
) -> tuple[RateTable, int, list[dict[str, Any]]]:
    """Retry at random times in a different world and count what worked; also return each
    exploratory retry as a row of the retry-timing model's training table (ml.retry)."""
    world = World(seed, customers, months)
    table, rng, samples = RateTable(), random.Random(seed), 0
    rows: list[dict[str, Any]] = []

    def explore(inv: Invoice, first: PaymentResult, failed_at: datetime) -> Outcome:
        nonlocal samples
        code, last, o = first.decline_code or "unknown", failed_at, Outcome()
        for attempt in range(2, 6):
            at = last + timedelta(hours=rng.uniform(2, 20 * 24))
            r = world.charge(inv, attempt, at)
            table.add(code, at, (at - last).total_seconds() / 3600, r.succeeded)
            local = last.astimezone(IST)
            rows.append({
                "decline_code": code, "method": inv.method, "issuer": inv.issuer,
                "amount_minor": inv.amount_minor, "day_of_month": local.day, "hour": local.hour,
                "attempt_number": attempt, "offset_hours": (at - last).total_seconds() / 3600,
                "succeeded": int(r.succeeded), "failed_at": last,
            })  # fmt: skip
            samples += 1
            o.retries += 1
            if r.succeeded or r.status is PaymentStatus.REQUIRES_ACTION:
                o.recovered = r.succeeded
                return o
            code, last = r.decline_code or code, at
        return o

    world.run(explore)
    return table, samples, rows


def registered_model_policy(rows: list[dict[str, Any]], root: Path) -> tuple[RetryPolicy, str]:
    """Train ml.retry's model on the exploratory retries, register it as `retry_timing@champion`
    in a temporary MLflow store, and load it back the way the payments jobs do."""
    import pandas as pd

    from ml import registry
    from ml.retry import REGISTERED_NAME, fit_retry_model, log_and_register
    from orchestration.defs.payments.smart_policy import smart_policy
    from orchestration.lib.resources import MlflowResource

    data = pd.DataFrame(rows)
    model = fit_retry_model(data)
    uri, artifacts = f"sqlite:///{root / 'mlflow.db'}", root / "mlartifacts"
    registry.configure(uri, "paysight", str(artifacts))
    with registry.start_asset_run("retry_timing_model", "retry-policies-benchmark"):
        version = log_and_register(model, data.head(50), model.holdout)
    registry.MlflowClient().set_registered_model_alias(REGISTERED_NAME, "champion", version)
    choice = smart_policy(MlflowResource(tracking_uri=uri, artifacts_dir=str(artifacts)), "UTC")
    if choice.version is None:
        raise SystemExit(f"the registered retry model did not load: {choice.note}")
    holdout = ", ".join(f"{k} {v:.3f}" for k, v in sorted(model.metrics.items()) if "roc" in k)
    return choice.policy, f"{choice.model} ({len(data)} rows; holdout {holdout})"


def summarize(name: str, outcomes: list[Outcome]) -> dict[str, Any]:
    rec = [o for o in outcomes if o.recovered]
    failed_volume = sum(o.amount_minor for o in outcomes)
    return {
        "policy": name,
        "failed": len(outcomes),
        "recovery_rate": sum(o.amount_minor for o in rec) / failed_volume
        if failed_volume
        else float("nan"),
        "mean_days": sum(o.days_to_recovery for o in rec) / len(rec) if rec else float("nan"),
        "attempts_per_recovery": sum(o.retries for o in outcomes) / len(rec)
        if rec
        else float("nan"),
        # a customer with an invoice that is never recovered is lost to involuntary churn
        "churned": len({o.customer for o in outcomes if not o.recovered}),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=99)
    ap.add_argument("--train-seed", type=int, default=None, help="defaults to seed + 1000")
    ap.add_argument("--customers", type=int, default=600)
    ap.add_argument("--months", type=int, default=6)
    args = ap.parse_args()
    train_seed = args.seed + 1000 if args.train_seed is None else args.train_seed
    if train_seed == args.seed:
        ap.error(
            "--train-seed must differ from --seed: the scorer may not learn from the test world"
        )

    t0 = time.perf_counter()
    scorer, samples, explored = train_scorer(train_seed, args.customers * 2, args.months)
    print(f"scorer: {samples} exploratory retries learned from seed {train_seed} "
          f"({time.perf_counter() - t0:.1f}s)")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="paysight-retry-bench-") as tmp:
        t0 = time.perf_counter()
        model_policy, about = registered_model_policy(explored, Path(tmp))
        print(f"registered model: {about} ({time.perf_counter() - t0:.1f}s)")

        policies: list[tuple[str, RetryPolicy]] = [
            ("fixed", FixedPolicy()),
            ("exponential", ExponentialPolicy()),
            ("smart", SmartPolicy(scorer=scorer)),
            ("smart-model", model_policy),
        ]
        rows = []
        for name, policy in policies:
            t = time.perf_counter()
            world = World(args.seed, args.customers, args.months)
            row = summarize(name, replay(world, policy))
            row["seconds"] = time.perf_counter() - t
            rows.append(row)
    _report(args, rows)


def _report(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    base = rows[0]
    assert len({r["failed"] for r in rows}) == 1, "policies must replay the same failures"
    print(f"\nworld seed {args.seed}: {args.customers} customers x {args.months} months, "
          f"{base['failed']} failed first attempts replayed under each policy")  # fmt: skip
    header = f"{'policy':<12}{'recovery rate':>15}{'vs fixed':>10}{'mean days':>11}{'attempts/recovery':>19}{'churned':>9}{'secs':>7}"
    print(header)
    print("-" * len(header))
    by = {r["policy"]: r["recovery_rate"] for r in rows}
    for r in rows:
        delta = (r["recovery_rate"] - base["recovery_rate"]) * 100
        print(f"{r['policy']:<12}{r['recovery_rate']:>14.1%} {delta:>+8.1f}pp{r['mean_days']:>11.1f}"
              f"{r['attempts_per_recovery']:>19.2f}{r['churned']:>9}{r['seconds']:>7.1f}")  # fmt: skip

    ok = by["smart-model"] > by["exponential"]
    print(f"\nsmart with the registered model vs exponential: {by['smart-model']:.1%} vs "
          f"{by['exponential']:.1%}: {'more recovered' if ok else 'NOT more recovered'}")  # fmt: skip


if __name__ == "__main__":
    main()
