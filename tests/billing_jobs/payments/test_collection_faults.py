"""The real ledger collection path (`collect_open_invoices`, `run_due_retries`, the janitor) under
SIGKILL at random points and under overlapping runs, on SQLite and PostgreSQL.

Each run is a forked process on its own engine and gateway connection. A kill point is the k-th
ledger statement, commit or gateway answer of the run (k random): every place a crash can fall
between recording an attempt, charging and settling the invoice. Afterwards the janitor runs and
the ledger must agree with the gateway: no invoice charged but open, no decline without retry
or dunning state, no double charge, no hard (or customer-action) decline charged again.
"""

from __future__ import annotations

import os
import random
import signal
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, select

from billing_jobs.ledger import schema as s
from billing_jobs.payments.attempt_store import LedgerAttemptStore
from billing_jobs.payments.charging import NOT_CHARGED, UNRESOLVED, InvoiceCharge, retry_context
from billing_jobs.payments.collection import collect_open_invoices, run_due_retries
from billing_jobs.payments.declines import DeclineClass, classify
from billing_jobs.payments.janitor import resolve_unknown
from billing_jobs.payments.payment_methods import add_payment_method
from billing_jobs.payments.retries import ExponentialPolicy
from billing_jobs.subscriptions.service import create_subscription
from simulation.gateway.port import timeout_rate
from simulation.gateway.simulated import SimulatedGateway

SEED = 11
T0 = datetime(2025, 3, 3, 6, 0, tzinfo=UTC)
START = datetime(2025, 4, 14, 6, 0, tzinfo=UTC)  # mid-month: more first attempts fail
METHODS = [
    {"kind": "netbanking", "token": "tok_netbanking_SBIN", "bank": "SBIN"},
    {"kind": "netbanking", "token": "tok_netbanking_HDFC", "bank": "HDFC"},
    {"kind": "upi", "token": "tok_upi_oksbi", "vpa": "acme@oksbi"},
    {"kind": "card", "token": "tok_card_sbi_visa_4242_03_2025", "last4": "4242",
     "exp_month": 3, "exp_year": 2025},  # expired by April: declined, the customer must act
    {"kind": "wallet", "token": "tok_wallet_paytm", "wallet": "paytm"},
    {"kind": "card", "token": "tok_card_sbi_visa_1111_12_2030", "last4": "1111",
     "exp_month": 12, "exp_year": 2030},
]  # fmt: skip
CUSTOMERS = 36
TIMEOUTS = timeout_rate(SEED, 0.12)


def _world(ledger: Engine, new_customer, gw_path: Path, spread: timedelta) -> None:
    """CUSTOMERS customers (mixed methods), each with one open invoice, issued from START on
    over `spread` (so later runs find new invoices to charge, besides retries)."""
    gw = SimulatedGateway(SEED, 1, state=gw_path, clock=lambda: T0)
    for i in range(CUSTOMERS):
        cid = new_customer(ledger, email=f"c{i}@acme.example", external_ref=f"c{i}")
        add_payment_method(ledger, gw, cid, METHODS[i % len(METHODS)], T0)
        create_subscription(ledger, customer_id=cid, plan="starter-monthly",
                            start=START + spread * i / CUSTOMERS, trial_days=0)  # fmt: skip
    gw.store.close()


def _gateway_at(gw_path: Path, at: datetime) -> SimulatedGateway:
    return SimulatedGateway(SEED, 1, state=gw_path, clock=lambda: at)


STEPS: dict[str, Callable] = {
    "collect": lambda e, g, now: collect_open_invoices(e, g, "simulated", now),
    "retries": lambda e, g, now: run_due_retries(e, g, now),
    "janitor": lambda e, g, now: resolve_unknown(e, g, now),
}


Kill = tuple[str | None, int]  # die at the n-th event of this kind (None: of any kind)


def _child(engine: Engine, gw_path: Path, now: datetime, steps: list[str], die_at: Kill | None,
           report_fd: int, go_fd: int | None) -> None:  # fmt: skip
    # The parent's engine with a fresh pool: its pooled connections are not ours, but its cache
    # of compiled statements is (a cold cache would make every run several times slower).
    engine.dispose(close=False)
    gw = SimulatedGateway(SEED, 1, state=gw_path, clock=lambda: now, timeouts=TIMEOUTS)
    seen: Counter[str | None] = Counter()
    die_kind, die_n = die_at if die_at is not None else (None, 0)

    def tick(label: str) -> None:
        seen[None] += 1
        seen[label] += 1
        if seen[die_kind] == die_n:
            os.write(report_fd, f"{label}\n".encode())
            os.kill(os.getpid(), signal.SIGKILL)

    event.listen(engine, "before_cursor_execute", lambda *a: tick("statement"))
    event.listen(engine, "commit", lambda *a: tick("commit"))
    charge = gw.charge

    def charged(*args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return charge(*args, **kwargs)
        finally:
            tick("gateway")  # the gateway decided (or timed out): nothing settled yet

    gw.charge = charged  # type: ignore[method-assign]
    if go_fd is not None:
        os.read(go_fd, 1)  # start together with the other collectors
    for step in steps:
        STEPS[step](engine, gw, now)
    os.write(report_fd, f"done {seen[None]}\n".encode())


def _fork(ledger: Engine, gw_path: Path, now: datetime, steps: list[str],
          die_at: Kill | None = None, report_fd: int = 2, go_fd: int | None = None) -> int:  # fmt: skip
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            _child(ledger, gw_path, now, steps, die_at, report_fd, go_fd)
        except BaseException:
            traceback.print_exc()
            code = 3
        os._exit(code)
    return pid


def _wait(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _check_ledger_agrees_with_gateway(ledger: Engine, gw_path: Path) -> dict[str, int]:
    gw = SimulatedGateway(SEED, 1, state=gw_path, clock=lambda: T0)
    pays = gw.store.all("select * from sim_payments order by created_at, id")
    gw.store.close()
    inv, pa, cs = s.invoices, s.payment_attempts, s.payments_collection_state
    with ledger.connect() as conn:
        invoices = {r.id: r for r in conn.execute(select(inv))}
        attempts = conn.execute(select(pa).order_by(pa.c.invoice_id, pa.c.attempt_number)).all()
        states = {r.invoice_id: r for r in conn.execute(select(cs))}
    by_key = {a.idempotency_key: a for a in attempts}
    succeeded = Counter(p["invoice_id"] for p in pays if p["status"] == "succeeded")
    # 0 double charges, and no gateway payment without its attempt (agreeing with it)
    assert [i for i, n in succeeded.items() if n > 1] == []
    for p in pays:
        a = by_key[p["idempotency_key"]]
        assert (str(a.invoice_id), a.status) == (p["invoice_id"], p["status"]), p["id"]
    # 0 invoices charged but open
    charged_open = [i for i in succeeded if invoices[int(i)].status != "paid"]
    assert charged_open == []
    assert all(invoices[a.invoice_id].status == "paid" for a in attempts if a.status == "succeeded")
    # everything resolved, nothing claimed, attempts the gateway never saw failed as not charged
    store = LedgerAttemptStore(ledger, "simulated")
    assert [a.id for a in attempts if store._attempt(a).status in UNRESOLVED] == []
    assert [i for i, st in states.items() if st.claim_attempt_id is not None] == []
    gw_keys = {p["idempotency_key"] for p in pays}
    for a in attempts:
        if a.idempotency_key not in gw_keys:
            assert (a.status, a.decline_code) == ("failed", NOT_CHARGED), a.idempotency_key
    # 0 declined invoices without retry or dunning state
    history: dict[int, list] = defaultdict(list)
    for a in attempts:
        history[a.invoice_id].append(store._attempt(a))
    policy = ExponentialPolicy()
    declined = 0
    for inv_id, tries in history.items():
        row = invoices[inv_id]
        if row.status != "open":
            continue
        assert tries[-1].status.value == "failed"
        declined += 1
        st = states.get(inv_id)
        assert st is not None and st.dunning_json, f"invoice {inv_id} has no dunning state"
        charge = InvoiceCharge(str(inv_id), "-", "-", tries[-1].amount_minor, row.currency)
        ctx = retry_context(charge, tries, "simulated")
        assert (st.next_retry_at is not None) == policy.next_attempt(ctx).retry, inv_id
    # 0 hard (or customer-action) declines charged again on the same method
    last_by_method: dict[tuple[str, str], str | None] = {}
    for p in pays:
        key = (p["invoice_id"], p["pm_token"])
        prior = last_by_method.get(key)
        assert prior is None or classify("simulated", prior) is DeclineClass.SOFT, key
        last_by_method[key] = p["decline_code"] if p["status"] == "failed" else None
    codes = Counter(a.decline_code for a in attempts if a.status == "failed")
    return {
        "attempts": len(attempts),
        "paid": sum(r.status == "paid" for r in invoices.values()),
        "declined_open": declined,
        "not_charged": codes[NOT_CHARGED],
        "hard_or_action": sum(
            n for c, n in codes.items() if classify("simulated", c) is not DeclineClass.SOFT
        ),
        "retried": sum(a.attempt_number > 1 for a in attempts),
    }


def test_sigkill_at_random_points_then_the_janitor_leaves_nothing_half_done(
    ledger, new_customer, tmp_path
):
    gw_path = tmp_path / "gw.sqlite"
    _world(ledger, new_customer, gw_path, timedelta(days=10))
    rng = random.Random(2026)
    read_fd, write_fd = os.pipe()
    kills: Counter[str] = Counter()
    now, rounds, work = START, 0, 300
    while sum(kills.values()) < 32:
        rounds += 1
        assert rounds <= 150, f"only {sum(kills.values())} kills in {rounds} rounds"
        steps = ["collect", "retries"]
        if rng.random() < 0.35:
            steps.insert(rng.randrange(3), "janitor")
        # A kill point uniform over 1.6 times the steps the last whole run took: many runs
        # die, anywhere in their work; some finish.
        # A kill point: the k-th ledger statement, or (one run in four) right after a gateway
        # answer before the ledger hears of it, or (one in six) just before a commit.
        u = rng.random()
        if u < 0.25:
            die: Kill = ("gateway", rng.randint(1, 2))
        elif u < 0.4:
            die = ("commit", rng.randint(1, 5))
        else:
            die = (None, rng.randrange(1, work))
        code = _wait(_fork(ledger, gw_path, now, steps, die, write_fd))
        assert code in (0, -signal.SIGKILL), f"run {rounds} failed with exit code {code}"
        label = os.read(read_fd, 64).decode().strip()
        if code == -signal.SIGKILL:
            kills[label] += 1
        else:
            work = max(60, int(1.6 * int(label.split()[1])))
        now += timedelta(hours=rng.choice([2, 5, 9, 14]))
    os.close(read_fd)
    os.close(write_fd)
    end = now + timedelta(days=3)  # UPI settled, every pending attempt stale
    resolve_unknown(ledger, _gateway_at(gw_path, end), end)
    figures = _check_ledger_agrees_with_gateway(ledger, gw_path)
    # and collection carries on from there: one whole run, then the janitor again
    assert _wait(_fork(ledger, gw_path, end, ["collect", "retries"])) == 0
    later = end + timedelta(days=3)
    resolve_unknown(ledger, _gateway_at(gw_path, later), later)
    figures = _check_ledger_agrees_with_gateway(ledger, gw_path)
    # the crashes fell everywhere, including between the gateway's answer and the ledger
    assert kills["gateway"] >= 4 and kills["statement"] >= 10 and kills["commit"] >= 2, kills
    assert figures["paid"] and figures["retried"] and figures["not_charged"], figures
    assert figures["declined_open"] and figures["hard_or_action"], figures


@pytest.mark.parametrize("processes", [2, 3])
def test_overlapping_collectors_charge_each_scheduled_attempt_once(
    ledger, new_customer, tmp_path, processes
):
    gw_path = tmp_path / "gw.sqlite"
    _world(ledger, new_customer, gw_path, timedelta(0))
    times = [START, START + timedelta(days=2), START + timedelta(days=5),
             START + timedelta(days=11)]  # fmt: skip
    for i, now in enumerate(times):
        go_r, go_w = os.pipe()
        steps = ["collect", "retries"] if i % 2 == 0 else ["retries", "collect"]
        pids = [_fork(ledger, gw_path, now, steps, go_fd=go_r) for _ in range(processes)]
        os.write(go_w, b"x" * processes)
        assert [_wait(p) for p in pids] == [0] * processes
        os.close(go_r)
        os.close(go_w)
        later = now + timedelta(hours=40)  # UPI answers, timeouts resolved before the next run
        resolve_unknown(ledger, _gateway_at(gw_path, later), later)
    with ledger.connect() as conn:
        attempts = conn.execute(select(s.payment_attempts)).all()
    per_run = Counter((a.invoice_id, a.created_at) for a in attempts)
    assert [k for k, n in per_run.items() if n > 1] == []  # one attempt per invoice per run
    figures = _check_ledger_agrees_with_gateway(ledger, gw_path)
    assert figures["retried"] and figures["hard_or_action"], figures
