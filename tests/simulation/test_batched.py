"""The batched world equals the per-row world, keeps the ledger invariants, and hands over to the
payments service: its collect and retry jobs act on simulated customers afterwards."""

from __future__ import annotations

import sqlite3
from datetime import UTC, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from billing_jobs.ledger import make_engine
from billing_jobs.payments.collection import collect_open_invoices, run_due_retries
from billing_jobs.payments.payment_methods import list_payment_methods
from billing_jobs.service import run_billing
from simulation.gateway.simulated import SimulatedGateway
from simulation.invariants import check_world
from simulation.params import SimulationError
from simulation.population import at_ist
from simulation.world import simulate

TABLES = ("customers", "payment_methods", "subscriptions", "subscription_items",
          "subscription_events", "invoices", "invoice_lines", "credit_notes", "payment_attempts",
          "customer_balance_transactions", "payments_gateway_customers",
          "payments_collection_state", "payments_method_details")  # fmt: skip


def _dump(run: Path) -> dict[str, list]:
    led, gw = sqlite3.connect(run / "ledger.sqlite"), sqlite3.connect(run / "gateway.sqlite")
    try:
        out = {t: led.execute(f"select * from {t} order by 1").fetchall() for t in TABLES}
        for t in ("sim_payments", "sim_balance_txns", "sim_payouts", "sim_disputes", "sim_events"):
            out[t] = gw.execute(f"select * from {t} order by 1").fetchall()
        return out
    finally:
        led.close()
        gw.close()


def test_batched_and_per_row_paths_build_the_same_world(tmp_path):
    args = {"customers": 30, "months": 3, "seed": 5, "start": "2025-03-01"}
    fast = simulate(None, tmp_path / "fast", **args)
    slow = simulate(None, tmp_path / "slow", batched=False, **args)
    assert fast.counts == slow.counts and fast.counts["attempts"] > 0
    a, b = _dump(tmp_path / "fast"), _dump(tmp_path / "slow")
    for table in a:
        assert a[table] == b[table], table
    assert check_world(fast.ledger_url, fast.gateway_state_path)["attempts"] == len(
        a["payment_attempts"]
    )


def _ledger_copy(world, tmp_path: Path) -> tuple[Path, sqlite3.Connection]:
    """A copy of the world's ledger to corrupt, and an open connection to it."""
    copy = tmp_path / "ledger.sqlite"
    src = sqlite3.connect(Path(world.ledger_url.split("///", 1)[1]))
    dst = sqlite3.connect(copy)
    src.backup(dst)
    src.close()
    return copy, dst


def test_invariants_catch_a_second_payment_and_a_gap(world, tmp_path):
    check_world(world.ledger_url, world.gateway_state_path)
    copy, dst = _ledger_copy(world, tmp_path)
    paid = dst.execute(
        "select invoice_id, max(attempt_number), amount_minor, currency, created_at"
        " from payment_attempts where status = 'succeeded' group by invoice_id limit 1"
    ).fetchone()
    dst.execute(
        "insert into payment_attempts (invoice_id, attempt_number, idempotency_key, status,"
        " gateway, amount_minor, currency, created_at) values (?, ?, ?, 'succeeded',"
        " 'simulated', ?, ?, ?)",
        (paid[0], paid[1] + 1, f"forged-{paid[0]}", paid[2], paid[3], paid[4]),
    )
    dst.execute("update invoices set number = substr(number, 1, length(number) - 6) || '999999'"
                " where id = (select max(id) from invoices where number is not null)")  # fmt: skip
    dst.commit()
    dst.close()
    with pytest.raises(SimulationError, match="2 successful attempts") as e:
        check_world(f"sqlite:///{copy}", world.gateway_state_path)
    assert "not gapless" in str(e.value)


def test_payment_jobs_carry_on_with_the_simulated_world(tmp_path):
    w = simulate(None, tmp_path / "w", customers=40, months=3, seed=9, start="2025-03-01")
    assert w.counts["gateway_links"] == w.counts["customers"]
    assert w.counts["collection_states"] > 0  # some invoices were still failing at the end
    engine = make_engine(w.ledger_url)
    with engine.connect() as conn:
        handed = dict(conn.execute(text(
            "select invoice_id, next_retry_at from payments_collection_state"
        )).all())  # fmt: skip
        sim_customers = {r[0] for r in conn.execute(text(
            "select id from customers where external_ref like 'sim-9-%'"))}  # fmt: skip
    cards = [m for c in sorted(sim_customers) for m in list_payment_methods(engine, c)
             if m["kind"] == "card" and m["is_default"]]  # fmt: skip
    assert cards and all(m["last4"] and m["brand"] and m["exp_year"] for m in cards)
    now = at_ist(w.end, 0) + timedelta(days=12)
    gw = SimulatedGateway(42, 1, state=w.gateway_state_path, clock=lambda: now)
    try:
        billed = run_billing(engine, now)  # renewals after the world's end
        assert billed.invoices_created > 0
        collected = collect_open_invoices(engine, gw, "simulated", now)
        assert set(billed.invoice_ids) <= set(collected.charged) | set(collected.paid)
        assert not any("customer" in why or "method" in why for why in collected.skipped.values())
        with engine.connect() as conn:
            ids = ",".join(map(str, collected.charged))
            owners = {r[0] for r in conn.execute(
                text(f"select customer_id from invoices where id in ({ids})"))}  # fmt: skip
        assert owners and owners <= sim_customers
        later = now + timedelta(days=30)
        gw.clock = lambda: later
        retried = run_due_retries(engine, gw, later)
        assert set(retried.charged) & {i for i, at in handed.items() if at is not None}
        with engine.connect() as conn:
            ids = ",".join(map(str, retried.charged))
            keys = {r[0] for r in conn.execute(text(
                f"select idempotency_key from payment_attempts where invoice_id in ({ids})"))}  # fmt: skip
        at_gateway = {r[0] for r in gw.store.all("select idempotency_key from sim_payments")}
        assert keys <= at_gateway  # every attempt of the retried invoices reached the gateway
    finally:
        gw.store.close()
        engine.dispose()
    # still paid once, numbers still gapless (the last UPI payments may be pending here)
    check_world(w.ledger_url, w.gateway_state_path, at_world_end=False)


def test_a_card_added_again_gets_its_old_ledger_row_back(tmp_path):
    from datetime import datetime

    from simulation.params import make_params
    from simulation.world import World

    w = simulate(None, tmp_path / "w", customers=3, months=1, seed=2)
    engine = make_engine(w.ledger_url)
    world = World(make_params(3, 1, 2, "2025-01-01", tmp_path), engine, None, None)  # type: ignore[arg-type]
    t1 = datetime(2025, 3, 1, 10, tzinfo=UTC)
    try:
        with engine.begin() as conn:
            (old,) = conn.execute(text(
                "select gateway_token from payment_methods where customer_id = 1 and is_default"
            )).one()  # fmt: skip
            world.conn = conn
            world._ledger_methods([(1, "pm_sim_new_card", "card", False, t1)])
            world._ledger_methods([(1, old, "card", False, t1 + timedelta(days=1))])
            rows = conn.execute(text(
                "select gateway_token, is_default, removed_at is null from payment_methods"
                " where customer_id = 1 order by id"
            )).all()  # fmt: skip
    finally:
        engine.dispose()
    assert [tuple(r) for r in rows] == [(old, 1, 1), ("pm_sim_new_card", 0, 0)]


def test_invariants_catch_a_ledger_behind_the_gateway_at_the_end(world, tmp_path):
    # The world ends with a janitor pass; a ledger still pending on a payment the gateway
    # resolved (a success would show in reconciliation as one the ledger lacks) is refused.
    copy, dst = _ledger_copy(world, tmp_path)
    key = dst.execute(
        "select idempotency_key from payment_attempts where status = 'failed'"
        " and gateway_payment_id is not null limit 1"
    ).fetchone()[0]
    dst.execute("update payment_attempts set status = 'pending' where idempotency_key = ?", (key,))
    dst.commit()
    dst.close()
    with pytest.raises(SimulationError, match=f"{key} is pending here but failed at the gateway"):
        check_world(f"sqlite:///{copy}", world.gateway_state_path)
    check_world(f"sqlite:///{copy}", world.gateway_state_path, at_world_end=False)


def test_the_world_ends_with_a_janitor_pass(world):
    # The daily pass runs at noon: this world has UPI payments the gateway resolved on its
    # last afternoon, which the closing pass brings into the ledger before the hand-over.
    assert world.counts["resolved_at_end"] > 0
    check_world(world.ledger_url, world.gateway_state_path)
