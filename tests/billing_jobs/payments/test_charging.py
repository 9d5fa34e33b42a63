"""Collection: attempts recorded before charging, unknown outcomes resolved without recharging,
and a crash test (SIGKILL at random points) proving no invoice is ever charged twice."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from billing_jobs.payments.charging import (
    NOT_CHARGED,
    AlreadyPaid,
    AttemptInFlight,
    AttemptStatus,
    CollectionError,
    InvoiceCharge,
    SqliteAttemptStore,
    apply_gateway_outcome,
    collect_invoice,
    resolve_unknown_attempts,
    retry_context,
)
from billing_jobs.payments.gateway import PaymentStatus, idempotency_key_for
from billing_jobs.payments.retries import ExponentialPolicy
from simulation.gateway.simulated import SimulatedGateway

T0 = datetime(2026, 3, 12, 10, 0, tzinfo=UTC)
CARD = "tok_card_hdfc_visa_4242_12_2030"
WORKER = Path(__file__).with_name("collection_worker.py")
ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").exists())


class Clock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


def world(tmp_path, timeouts=None):
    clock = Clock(T0)
    gw = SimulatedGateway(3, 1, state=tmp_path / "gw.sqlite", clock=clock, timeouts=timeouts)
    cid = gw.create_customer(email="x@example.in").gateway_customer_id
    pm = gw.attach_payment_method(cid, CARD).token
    store = SqliteAttemptStore(tmp_path / "attempts.sqlite")
    return gw, store, clock, (cid, pm)


def invoice(cus: tuple[str, str], n: int = 1, pm: str | None = None) -> InvoiceCharge:
    return InvoiceCharge(f"in_{n}", cus[0], pm or cus[1], 49_900, "INR")


def paid_invoice(gw, store, cid, clock):
    for n in range(1, 50):
        a = collect_invoice(store, gw, invoice(cid, n), clock.t)
        if a.status is AttemptStatus.SUCCEEDED:
            return n, a
    raise AssertionError("no success in 50 invoices")


def test_records_before_charging_and_finalizes(tmp_path):
    gw, store, clock, cid = world(tmp_path)
    n, a = paid_invoice(gw, store, cid, clock)
    assert a.attempt_number == 1 and a.idempotency_key == idempotency_key_for(f"in_{n}", 1)
    assert a.gateway_payment_id and store.has_success(f"in_{n}")
    assert gw.find_payment(a.idempotency_key).metadata["invoice_id"] == f"in_{n}"
    with pytest.raises(AlreadyPaid):
        collect_invoice(store, gw, invoice(cid, n), clock.t)


def test_failed_attempts_number_up_and_use_new_keys(tmp_path):
    gw, store, clock, cid = world(tmp_path)
    bad = gw.attach_payment_method(cid[0], "tok_card_sbi_visa_0001_01_2025").token  # expired
    inv = invoice(cid, 77, bad)
    first = collect_invoice(store, gw, inv, clock.t)
    second = collect_invoice(store, gw, inv, clock.t + timedelta(days=1))
    assert (first.status, first.decline_code) == (AttemptStatus.FAILED, "expired_card")
    assert second.attempt_number == 2 and second.idempotency_key != first.idempotency_key


def test_retry_context_from_history_drives_the_policy(tmp_path):
    gw, store, clock, cid = world(tmp_path)
    bad = gw.attach_payment_method(cid[0], "tok_card_sbi_visa_0001_01_2025").token
    inv = invoice(cid, 78, bad)
    assert retry_context(inv, [], "simulated") is None
    collect_invoice(store, gw, inv, clock.t)
    collect_invoice(store, gw, inv, clock.t + timedelta(days=2))
    ctx = retry_context(inv, store.attempts(inv.invoice_id), "simulated")
    assert (ctx.attempts_made, ctx.decline_code) == (2, "expired_card")
    assert (ctx.first_failed_at, ctx.last_failed_at) == (clock.t, clock.t + timedelta(days=2))
    assert not ExponentialPolicy().next_attempt(ctx).retry  # expired card: the customer must act
    n, _ = paid_invoice(gw, store, cid, clock)
    assert retry_context(invoice(cid, n), store.attempts(f"in_{n}"), "simulated") is None


def test_gateway_rejection_is_a_failed_attempt(tmp_path):
    gw, store, clock, cid = world(tmp_path)
    a = collect_invoice(store, gw, invoice(cid, 5, "pm_never_attached"), clock.t)
    assert a.status is AttemptStatus.FAILED and a.decline_code == "resource_missing"


def test_timeout_after_charge_is_unknown_then_resolved_without_recharging(tmp_path):
    gw, store, clock, cid = world(
        tmp_path, timeouts=lambda key: "after" if key.endswith("-1") else None
    )
    a = collect_invoice(store, gw, invoice(cid, 9), clock.t)
    assert a.status is AttemptStatus.UNKNOWN
    with pytest.raises(AttemptInFlight):
        collect_invoice(store, gw, invoice(cid, 9), clock.t)
    payments_before = len(gw.list_payments().items)
    resolved = resolve_unknown_attempts(store, gw, clock.t + timedelta(minutes=1))
    assert [r.attempt_id for r in resolved] == [a.attempt_id]
    assert resolved[0].status in (AttemptStatus.SUCCEEDED, AttemptStatus.FAILED)
    assert resolved[0].gateway_payment_id == gw.find_payment(a.idempotency_key).gateway_payment_id
    assert len(gw.list_payments().items) == payments_before  # the janitor never charges


def test_timeout_before_reaching_gateway_resolves_as_not_charged(tmp_path):
    gw, store, clock, cid = world(tmp_path, timeouts=lambda key: "before")
    a = collect_invoice(store, gw, invoice(cid, 4), clock.t)
    assert a.status is AttemptStatus.UNKNOWN
    assert resolve_unknown_attempts(store, gw, clock.t + timedelta(minutes=1)) == []  # too fresh
    [r] = resolve_unknown_attempts(store, gw, clock.t + timedelta(hours=1))
    assert (r.status, r.decline_code) == (AttemptStatus.FAILED, NOT_CHARGED)
    assert gw.list_payments().items == []


def test_crash_between_record_and_charge_is_resolved_by_janitor(tmp_path):
    gw, store, clock, cid = world(tmp_path)
    a = store.record_pending(invoice(cid, 8), clock.t)  # ...and the process died here
    with pytest.raises(AttemptInFlight):
        collect_invoice(store, gw, invoice(cid, 8), clock.t)
    [r] = resolve_unknown_attempts(store, gw, clock.t + timedelta(hours=1))
    assert r.attempt_id == a.attempt_id and r.decline_code == NOT_CHARGED


def test_upi_processing_then_webhook_duplicates_and_late_outcomes(tmp_path):
    gw, store, clock, cid = world(tmp_path)
    upi = gw.attach_payment_method(cid[0], "tok_upi_okicici").token
    a = collect_invoice(store, gw, invoice(cid, 3, upi), clock.t)
    assert a.status is AttemptStatus.PROCESSING
    clock.t += timedelta(days=2)
    final = gw.fetch_payment(a.gateway_payment_id)
    assert final.status in (PaymentStatus.SUCCEEDED, PaymentStatus.FAILED)
    done = apply_gateway_outcome(store, final, clock.t)
    assert done.status.value == final.status.value
    # a duplicate and a stale "pending" arriving late change nothing
    assert apply_gateway_outcome(store, final, clock.t) == done
    stale = gw.find_payment(a.idempotency_key).__class__(
        **{**asdict(final), "status": PaymentStatus.PENDING}
    )
    assert apply_gateway_outcome(store, stale, clock.t) == done


def test_store_validation(tmp_path):
    store = SqliteAttemptStore(tmp_path / "a.sqlite")
    with pytest.raises(CollectionError):
        InvoiceCharge("in_x", "cus", CARD, 0, "INR")
    with pytest.raises(CollectionError, match="timezone-aware"):
        store.record_pending(InvoiceCharge("in_x", "cus", CARD, 100, "INR"), datetime(2026, 1, 1))
    db = sqlite3.connect(tmp_path / "a.sqlite")
    store.record_pending(InvoiceCharge("in_y", "cus", CARD, 100, "INR"), T0)
    with pytest.raises(sqlite3.IntegrityError):  # the schema itself refuses a 2nd open attempt
        db.execute(
            "insert into collection_attempts values ('k2','in_y',2,'k2','pending',100,'INR',null,null,'t','t')"
        )


@pytest.mark.slow
def test_no_double_charge_under_random_sigkills(tmp_path):
    # Set up customers and invoices with a mix of cards and UPI, in SQLite files the workers share.
    clock = Clock(datetime(2026, 5, 1, tzinfo=UTC))
    gw = SimulatedGateway(5, 1, state=tmp_path / "gateway.sqlite", clock=clock)
    tokens = [
        CARD,
        "tok_card_sbi_visa_1111_12_2030",
        "tok_upi_oksbi",
        "tok_netbanking_HDFC",
        "tok_wallet_paytm",
    ]
    invoices = []
    for i in range(15):
        cid = gw.create_customer(email=f"c{i}@example.in").gateway_customer_id
        pm = gw.attach_payment_method(cid, tokens[i % len(tokens)]).token
        invoices.append(asdict(InvoiceCharge(f"in_{i}", cid, pm, 10_000 + 100 * i, "INR")))
    gw.store.close()
    (tmp_path / "invoices.json").write_text(json.dumps(invoices))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rng = random.Random(2026)
    killed = 0
    durations: list[float] = []
    for run in range(22):
        run_env = {**env, "PAYSIGHT_TEST_DIE_AT_STEP": str(rng.randrange(1, 300))}
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), str(tmp_path), str(run), "300", "mixed"],
            cwd=ROOT, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n", proc.stderr.read().decode()[-2000:]
        started = time.monotonic()
        time.sleep(rng.uniform(0.0, 0.5))  # kill at a random point of the work
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=30)
        killed += proc.returncode == -signal.SIGKILL
        durations.append(time.monotonic() - started)
        assert proc.returncode in (0, -signal.SIGKILL), err.decode()[-2000:]
    assert killed >= 10, f"only {killed} runs were killed mid-flight; run times {durations}"
    final = subprocess.run(
        [sys.executable, str(WORKER), str(tmp_path), "40", "5", "final"],
        cwd=ROOT, env=env, capture_output=True, timeout=60,
    )  # fmt: skip
    assert final.returncode == 0, final.stderr.decode()[-2000:]

    store = SqliteAttemptStore(tmp_path / "attempts.sqlite")
    attempts = store.attempts()
    gdb = sqlite3.connect(tmp_path / "gateway.sqlite")
    gpay = {
        key: (inv, status)
        for key, inv, status in gdb.execute(
            "select idempotency_key, invoice_id, status from sim_payments"
        )
    }
    assert attempts and gpay
    # 1. every invoice paid at most once, in our records and at the gateway
    for inv in {a.invoice_id for a in attempts}:
        assert (
            sum(a.status is AttemptStatus.SUCCEEDED for a in attempts if a.invoice_id == inv) <= 1
        )
    per_invoice = gdb.execute(
        "select invoice_id, count(*) from sim_payments where status='succeeded' group by invoice_id"
    ).fetchall()
    assert all(n == 1 for _, n in per_invoice)
    # 2. every attempt accounted for: resolved, and agreeing with the gateway
    by_key = {a.idempotency_key: a for a in attempts}
    assert not [a for a in attempts if a.status in (AttemptStatus.PENDING, AttemptStatus.UNKNOWN)]
    for key, (inv, status) in gpay.items():
        a = by_key[key]  # no gateway payment without an attempt
        assert a.invoice_id == inv
        if a.status is not AttemptStatus.PROCESSING:
            assert a.status.value == status, (key, a.status, status)
    for a in attempts:
        if a.idempotency_key not in gpay:
            assert a.status is AttemptStatus.FAILED and a.decline_code == NOT_CHARGED
    # 3. the run really exercised timeouts and retries
    assert any(a.decline_code == NOT_CHARGED for a in attempts)
    assert any(a.attempt_number > 1 for a in attempts)
    assert {inv for inv, _ in per_invoice} == {
        a.invoice_id for a in attempts if a.status is AttemptStatus.SUCCEEDED
    }
