"""Ledger invariants of a built world, checked against its ledger and gateway state: every invoice
paid at most once, gapless document numbers, attempts numbered 1..n and all seen by the gateway."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from pathlib import Path

from sqlalchemy import create_engine, text

from simulation.params import SimulationError

UNRESOLVED = frozenset({"pending", "processing", "unknown"})
TERMINAL = frozenset({"succeeded", "failed"})


def check_world(
    ledger_url: str, gateway_state_path: str | Path, *, at_world_end: bool = True
) -> dict[str, int]:
    """Counts of what was checked; raises SimulationError naming every broken invariant.
    `at_world_end=False` for a ledger that has been used since the hand-over (its janitor
    may not have asked the gateway about the latest payments yet)."""
    eng = create_engine(ledger_url)
    try:
        with eng.connect() as c:
            invoices = c.execute(
                text("select id, status, number, financial_year, amount_due_minor,"
                     " amount_paid_minor from invoices")
            ).all()  # fmt: skip
            notes = c.execute(text("select number, financial_year from credit_notes")).all()
            attempts = c.execute(
                text("select invoice_id, attempt_number, status, gateway_payment_id,"
                     " idempotency_key, amount_minor from payment_attempts")
            ).all()  # fmt: skip
    finally:
        eng.dispose()
    g = sqlite3.connect(str(gateway_state_path))
    try:
        gw = {r[0]: r for r in g.execute("select idempotency_key, id, status, invoice_id,"
                                         " amount_minor from sim_payments")}  # fmt: skip
    finally:
        g.close()
    problems: list[str] = []
    by_invoice: dict[int, list] = defaultdict(list)
    for a in attempts:
        by_invoice[a.invoice_id].append(a)
    for inv in invoices:
        tries = by_invoice.get(inv.id, [])
        wins = [a for a in tries if a.status == "succeeded"]
        if len(wins) > 1:
            problems.append(f"invoice {inv.id} has {len(wins)} successful attempts")
        if inv.amount_paid_minor > inv.amount_due_minor:
            problems.append(f"invoice {inv.id} paid {inv.amount_paid_minor} > due")
        paid_by_card = inv.status == "paid" and inv.amount_due_minor > 0
        if paid_by_card and (inv.amount_paid_minor != inv.amount_due_minor or len(wins) != 1):
            problems.append(f"invoice {inv.id} is paid without exactly one payment")
        if wins and inv.status != "paid":
            problems.append(f"invoice {inv.id} was charged successfully but is {inv.status}")
        numbers = sorted(a.attempt_number for a in tries)
        if numbers != list(range(1, len(numbers) + 1)):
            problems.append(f"invoice {inv.id} attempts are numbered {numbers}")
    for a in attempts:
        seen = gw.get(a.idempotency_key)
        if a.status in ("succeeded", "failed") and a.gateway_payment_id and seen is None:
            problems.append(f"attempt {a.idempotency_key} is not known to the gateway")
        if seen is not None and (seen[1] != a.gateway_payment_id and a.gateway_payment_id):
            problems.append(f"attempt {a.idempotency_key} points at another gateway payment")
        if seen is not None and seen[2] == "succeeded" and a.status == "failed":
            problems.append(f"attempt {a.idempotency_key} succeeded at the gateway, failed here")
        if at_world_end and seen is not None and seen[2] in TERMINAL and a.status in UNRESOLVED:
            # The world ends with a janitor pass: nothing the gateway had resolved by then
            # may still be open in the ledger.
            problems.append(
                f"attempt {a.idempotency_key} is {a.status} here but {seen[2]} at the gateway"
            )
    for series, rows in (("invoice", [(i.number, i.financial_year) for i in invoices if i.number]),
                         ("credit note", [(n.number, n.financial_year) for n in notes])):  # fmt: skip
        per_fy: dict[str, list[int]] = defaultdict(list)
        for number, fy in rows:
            tail = number.rsplit("/", 1)[-1]
            if not tail.isdigit():
                problems.append(f"{series} number {number!r} does not end in a sequence number")
                continue
            per_fy[fy].append(int(tail))
        for fy, ns in per_fy.items():
            if sorted(ns) != list(range(1, len(ns) + 1)):
                problems.append(f"{series} numbers of FY {fy} are not gapless from 1")
    if problems:
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise SimulationError("world invariants broken: " + "; ".join(problems[:10]) + more)
    return {"invoices": len(invoices), "attempts": len(attempts), "credit_notes": len(notes),
            "gateway_payments": len(gw)}  # fmt: skip
