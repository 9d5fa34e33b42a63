"""Comparison: the same simulated world (same seed and size) built with the product's dunning
rules and with the two rules the simulator used before it drove the product's dunning run
(issue #16), each alone and together, so a change in the demo summary can be traced to a rule.

    .venv/bin/python benchmarks/dunning_rules.py                      # 300 x 12, seed 42
    .venv/bin/python benchmarks/dunning_rules.py --size 5000x24       # the demo world (~4 min each)
    .venv/bin/python benchmarks/dunning_rules.py --variants product,old --keep /tmp/worlds

The rules (`billing_jobs.payments.dunning_run`; default `dunning.yaml`: restrict on day 14,
cancel on day 21):
  restrict  product: the subscription leaves past_due for unpaid (no renewals while unpaid; a
            payment makes it active again). Old copy: the restriction was only a notification,
            the subscription stayed past_due and kept renewing.
  cancel    product: the subscription is canceled and only the invoice in dunning is written
            off; any other open invoice of it keeps its own dunning (and can still be paid).
            Old copy: every open invoice of the subscription was written off with it.

Variants: `product` (today's world), `old_restrict` (restriction leaves the subscription
alone), `old_cancel` (cancel writes off all the subscription's open invoices), `old` (both:
the pre-#16 world). The old rules are applied around the product's run here only (the
simulator itself has none of them). Prints a ledger summary per variant: subscriptions by
status, MRR of active subscriptions, invoices by status, attempts and money collected."""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from unittest import mock

import simulation.world as world_mod
from billing_jobs.payments import dunning_run
from billing_jobs.payments.dunning import DunningStatus
from billing_jobs.payments.dunning_run import DunningStep, Effect
from simulation.world import OpenInvoice, World, simulate

VARIANTS = ("product", "old_restrict", "old_cancel", "old")


class _OldCancelWorld(World):
    """On a dunning cancel, also write off every other open invoice of the subscription
    (the simulator's pre-#16 rule)."""

    def _react_to_dunning(self, inv: OpenInvoice, step: DunningStep, now: datetime) -> None:
        super()._react_to_dunning(inv, step, now)
        if step.effect is Effect.CANCEL and inv.sub_id is not None:
            for other in sorted(self.open_by_sub.get(inv.sub_id, ())):
                self._write_off(self.invoices[other], now)

    def _dunning(self, now: datetime) -> None:
        super()._dunning(now)
        self._flush_write_offs()


@contextmanager
def variant(name: str) -> Iterator[None]:
    """The world of `simulate` under the named rules."""
    if name not in VARIANTS:
        raise SystemExit(f"unknown variant {name!r}: one of {', '.join(VARIANTS)}")
    with mock.patch.object(world_mod, "World", _OldCancelWorld if "old" in name else World):
        if name in ("old_restrict", "old"):
            # Restriction has no effect on the subscription (the notification is still sent).
            with mock.patch.dict(dunning_run._EFFECTS):
                del dunning_run._EFFECTS[DunningStatus.RESTRICTED]
                yield
        else:
            yield


def summary(ledger: Path) -> dict[str, object]:
    """What the ledger says: statuses, write-offs, attempts and collection (minor units)."""
    c = sqlite3.connect(ledger)
    try:

        def q(sql: str) -> list[tuple]:
            return c.execute(sql).fetchall()

        # Monthly run rate of the active subscriptions: each one's latest recurring invoice,
        # per month of its interval (the marts' MRR is the demo's; this is the ledger's view).
        mrr = q(
            "SELECT coalesce(sum((i.subtotal_minor - i.discount_minor) / (t.interval_count * CASE"
            " t.interval WHEN 'year' THEN 12 WHEN 'quarter' THEN 3 ELSE 1 END)), 0) FROM ("
            " SELECT s.id, s.interval, s.interval_count, max(v.id) AS last FROM subscriptions s"
            " JOIN invoices v ON v.subscription_id = s.id AND v.kind = 'recurring'"
            " WHERE s.status = 'active' GROUP BY s.id) t JOIN invoices i ON i.id = t.last"
        )[0][0]
        return {
            "subscriptions": dict(q("SELECT status, count(*) FROM subscriptions GROUP BY 1")),
            "active_last_invoice_net_minor": mrr,
            "invoices": {
                st: (n, due)
                for st, n, due in q(
                    "SELECT status, count(*), sum(amount_due_minor - amount_paid_minor)"
                    " FROM invoices GROUP BY 1"
                )
            },
            "attempts": dict(q("SELECT status, count(*) FROM payment_attempts GROUP BY 1")),
            "collected_minor": q(
                "SELECT coalesce(sum(amount_minor), 0) FROM payment_attempts"
                " WHERE status = 'succeeded'"
            )[0][0],
            "to_unpaid": q(
                "SELECT count(*) FROM subscription_events"
                " WHERE to_status = 'unpaid' AND from_status <> 'unpaid'"
            )[0][0],
            "unpaid_to_active": q(
                "SELECT count(*) FROM subscription_events"
                " WHERE from_status = 'unpaid' AND to_status = 'active'"
            )[0][0],
        }
    finally:
        c.close()


def build(name: str, customers: int, months: int, seed: int, root: Path) -> dict[str, object]:
    run = root / f"{name}-{customers}x{months}-{seed}"
    with variant(name):
        r = simulate(None, run, customers=customers, months=months, seed=seed, overwrite=True)
    return {"counts": r.counts, **summary(run / "ledger.sqlite")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size", default="300x12", help="CUSTOMERSxMONTHS")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--keep", type=Path, default=None, help="keep the worlds under this folder")
    a = ap.parse_args()
    customers, months = (int(x) for x in a.size.lower().split("x"))
    names = [v for v in a.variants.split(",") if v]
    with tempfile.TemporaryDirectory() as d:
        root = a.keep or Path(d)
        out = {n: build(n, customers, months, a.seed, root) for n in names}
    keys = [k for k in out[names[0]] if k != "counts"]
    print(f"world {customers}x{months} seed {a.seed}")
    for k in keys:
        print(f"{k}:")
        for n in names:
            print(f"  {n:>13}  {out[n][k]}")
    for k in ("invoices_uncollectible", "dunning_recovered", "churn_involuntary", "attempts"):
        print(f"{k}: " + "  ".join(f"{n}={out[n]['counts'].get(k, 0)}" for n in names))


if __name__ == "__main__":
    main()
