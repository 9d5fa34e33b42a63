"""The product's dunning rules against the simulator's pre-#16 copy of them, on the shared test
world: the two worlds differ exactly by the restriction rule (benchmarks/dunning_rules.py builds
the old-rule world; docs/operations.md explains the demo's numbers)."""

from __future__ import annotations

import sqlite3
from collections import Counter

from benchmarks.dunning_rules import variant
from simulation.world import simulate

MONEY_TABLES = ("customers", "subscription_items", "invoices", "invoice_lines",
                "payment_attempts", "credit_notes", "payment_methods")  # fmt: skip
EVENTS = "select subscription_id, at, kind, from_status, to_status from subscription_events"


def _rows(path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_the_old_rules_differ_from_the_products_only_by_the_restriction(
    world, world_args, tmp_path
):
    with variant("old"):
        old = simulate(None, tmp_path / "old", **world_args)
    new_db, old_db = world.run_dir / "ledger.sqlite", old.run_dir / "ledger.sqlite"
    for table in MONEY_TABLES:  # same invoices, charges and money, row for row
        sql = f"select * from {table} order by id"
        assert _rows(old_db, sql) == _rows(new_db, sql), table
    new_events, old_events = Counter(_rows(new_db, EVENTS)), Counter(_rows(old_db, EVENTS))
    restricted = [e for e in new_events if (e[3], e[4]) == ("past_due", "unpaid")]
    assert restricted  # the world exercises the rule
    assert not [e for e in old_events if "unpaid" in (e[3], e[4])]
    # The product's world is the old one plus each restriction, after which the subscription
    # leaves unpaid (canceled or active again) where the old one left past_due.
    expected = old_events.copy()
    for r in sorted(restricted, key=lambda e: e[1]):
        expected[r] += 1
        leaves = sorted(e for e in expected if e[0] == r[0] and e[1] >= r[1]
                        and e[3] == "past_due" and e[4] in ("canceled", "active") and expected[e] > 0)  # fmt: skip
        if leaves:
            first = min(leaves, key=lambda e: e[1])
            expected[first] -= 1
            expected[(*first[:3], "unpaid", first[4])] += 1
    assert +expected == new_events
    status = "select id, status from subscriptions order by id"
    pairs = zip(_rows(old_db, status), _rows(new_db, status), strict=True)
    moved = [(a, b) for a, b in pairs if a != b]
    assert all(a[1] == "past_due" and b[1] == "unpaid" for a, b in moved)
