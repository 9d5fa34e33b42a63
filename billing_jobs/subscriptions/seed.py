"""Bulk-create customers and active subscriptions (benchmarks, crash tests, demo worlds)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Engine, func, insert, select

from billing_jobs.catalog.snapshot import load_snapshot
from billing_jobs.ledger import schema as s
from billing_jobs.periods import period_bounds, require_aware

# (state_code, gstin) pairs cycling through intra-state, inter-state and unregistered buyers.
_BUYERS: tuple[tuple[str, str | None], ...] = (
    ("29", "29ABCDE1234F1ZW"),
    ("27", "27AAPFU0939F1ZV"),
    ("07", None),
    ("29", None),
)


def seed_subscriptions(
    engine: Engine,
    n: int,
    *,
    start: datetime,
    plans: Sequence[str] = ("scale-monthly",),
    currency: str = "INR",
    chunk: int = 5000,
) -> list[int]:
    """Create `n` customers with one active, not yet invoiced subscription each, starting at
    `start` (due at once). Plans cycle through `plans` (current versions). Returns sub ids."""
    start = require_aware(start, "start")
    with engine.connect() as conn:
        catalog = load_snapshot(conn)
        first_customer = conn.execute(select(func.coalesce(func.max(s.customers.c.id), 0))).scalar()
        conn.rollback()
    infos = [catalog.current_plan(code) for code in plans]
    sub_ids: list[int] = []
    for offset in range(0, n, chunk):
        size = min(chunk, n - offset)
        with engine.begin() as conn:
            customers = []
            for i in range(offset, offset + size):
                state, gstin = _BUYERS[i % len(_BUYERS)]
                customers.append(
                    {
                        "name": f"Seed customer {first_customer + i + 1}",
                        "state_code": state,
                        "gstin": gstin,
                        "tax_status": "regular",
                        "currency": currency,
                        "created_at": start,
                    }
                )
            cids = [
                r[0]
                for r in conn.execute(
                    insert(s.customers).returning(s.customers.c.id, sort_by_parameter_order=True),
                    customers,
                )
            ]
            subs = []
            for j, cid in enumerate(cids):
                plan = infos[(offset + j) % len(infos)]
                ps, pe = period_bounds(start, plan.interval, plan.interval_count, 0)
                subs.append(
                    {
                        "customer_id": cid,
                        "status": "active",
                        "currency": currency,
                        "interval": plan.interval,
                        "interval_count": plan.interval_count,
                        "billing_anchor": start,
                        "period_index": 0,
                        "current_period_start": ps,
                        "current_period_end": pe,
                        "next_action_at": ps,
                        "created_at": start,
                    }
                )
            ids = [
                r[0]
                for r in conn.execute(
                    insert(s.subscriptions).returning(
                        s.subscriptions.c.id, sort_by_parameter_order=True
                    ),
                    subs,
                )
            ]
            conn.execute(
                insert(s.subscription_items),
                [
                    {"subscription_id": sid, "plan_id": infos[(offset + j) % len(infos)].id,
                     "quantity": 1}
                    for j, sid in enumerate(ids)
                ],
            )  # fmt: skip
            sub_ids.extend(ids)
    return sub_ids
