"""The simulated world: deterministic, consistent with its ground truth, and truth kept apart."""

from __future__ import annotations

import csv
import json
import sqlite3
from collections import Counter
from datetime import UTC, datetime

import duckdb
import pandas as pd
from sqlalchemy import create_engine, inspect, text

from simulation.gateway import behaviour as sim_world
from simulation.gateway.port import fee_and_tax, settlement_time
from simulation.world import simulate


def _ledger_totals(url: str) -> dict[str, object]:
    eng = create_engine(url)
    with eng.connect() as c:
        out = {
            "invoices": c.execute(
                text("select status, count(*), sum(total_minor), sum(amount_paid_minor)"
                     " from invoices group by status order by status")
            ).all(),
            "attempts": c.execute(
                text("select status, count(*), sum(amount_minor) from payment_attempts"
                     " group by status order by status")
            ).all(),
            "subs": c.execute(
                text("select status, count(*) from subscriptions group by status order by status")
            ).all(),
            "credit_notes": c.execute(text("select count(*), sum(total_minor) from credit_notes")).all(),
        }  # fmt: skip
    eng.dispose()
    return out


def _gateway_rows(path) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "select id, status, amount_minor, decline_code, created_at from sim_payments order by id"
        ).fetchall()
    finally:
        conn.close()


def _bank_lines(world) -> list[dict[str, str]]:
    rows = []
    for f in sorted(world.bank_dir.glob("settlement_*.csv")):
        with f.open(newline="") as fh:
            rows += [r | {"file": f.name} for r in csv.DictReader(fh)]
    return rows


def _minor(text_amount: str) -> int:
    whole, _, frac = text_amount.partition(".")
    return int(whole) * 100 + int((frac + "00")[:2])


def _truth(world, name: str) -> pd.DataFrame:
    return pd.read_parquet(world.truth_dir / f"{name}.parquet")


def test_same_seed_same_world(world, world_args, tmp_path):
    again = simulate(None, tmp_path / "again", **world_args)
    assert _ledger_totals(again.ledger_url) == _ledger_totals(world.ledger_url)
    assert _gateway_rows(again.gateway_state_path) == _gateway_rows(world.gateway_state_path)
    assert again.counts == world.counts
    files = sorted(p.name for p in world.bank_dir.iterdir())
    assert files == sorted(p.name for p in again.bank_dir.iterdir()) and files
    for name in files:
        assert (world.bank_dir / name).read_bytes() == (again.bank_dir / name).read_bytes()
    for name in ("customers", "churn_events", "fraud_transactions", "settlement_discrepancies"):
        pd.testing.assert_frame_equal(_truth(world, name), _truth(again, name))


def test_another_seed_gives_another_world(world, world_args, tmp_path):
    other = simulate(None, tmp_path / "other", **(world_args | {"seed": 12, "months": 1}))
    assert _gateway_rows(other.gateway_state_path) != _gateway_rows(world.gateway_state_path)


def test_the_world_ran_the_billing_and_payment_code(world):
    totals = _ledger_totals(world.ledger_url)
    statuses = dict((s, n) for s, n, *_ in totals["invoices"])
    assert statuses.get("paid", 0) > 50
    attempts = dict((s, n) for s, n, _ in totals["attempts"])
    assert attempts.get("succeeded", 0) > 50 and attempts.get("failed", 0) > 5
    c = world.counts
    assert c["customers"] == 60 and c["dunning_notifications"] > 0 and c["fraud_charges"] > 0
    eng = create_engine(world.ledger_url)
    with eng.connect() as conn:
        # every paid invoice has exactly one succeeded attempt for the amount due
        bad = conn.execute(text(
            "select i.id from invoices i where i.status = 'paid' and i.amount_due_minor > 0"
            " and (select count(*) from payment_attempts a where a.invoice_id = i.id"
            " and a.status = 'succeeded' and a.amount_minor = i.amount_due_minor) != 1"
        )).all()  # fmt: skip
        kinds = {r[0] for r in conn.execute(text("select distinct kind from subscription_events"))}
        gaps = conn.execute(text(
            "select a.created_at, b.created_at from payment_attempts a join payment_attempts b"
            " on a.invoice_id = b.invoice_id and b.attempt_number = a.attempt_number + 1"
            " where a.status = 'failed' and a.decline_code != 'resource_missing'"
        )).all()  # fmt: skip
    eng.dispose()
    assert bad == []
    assert {"created", "status_changed", "canceled"} <= kinds
    # retries follow the exponential policy (1 day, x2, ±20% jitter); customer-initiated payments
    # (a new card, a payday promise) may come sooner
    hours = [(datetime.fromisoformat(str(b)) - datetime.fromisoformat(str(a))).total_seconds()
             / 3600 for a, b in gaps]  # fmt: skip
    assert hours and min(hours) > 0 and sum(h >= 19 for h in hours) >= len(hours) * 0.6


def test_churn_in_truth_matches_the_ledger_and_follows_signals(world):
    churn = _truth(world, "churn_events")
    signals = _truth(world, "behaviour_signals")
    assert len(churn) > 0 and set(churn["kind"]) <= {"voluntary", "involuntary"}
    eng = create_engine(world.ledger_url)
    with eng.connect() as conn:
        subs = dict(conn.execute(text("select id, status from subscriptions")).all())
        scheduled = {r[0] for r in conn.execute(text(
            "select subscription_id from subscription_events where kind = 'cancel_scheduled'"))}  # fmt: skip
    eng.dispose()
    for r in churn.itertuples():
        assert subs[r.subscription_id] == "canceled" or r.subscription_id in scheduled
        earlier = signals[(signals.customer_id == r.customer_id) & signals.precedes_churn]
        assert (earlier["at"] <= r.churned_at).all()
    voluntary = churn[churn.kind == "voluntary"]
    assert voluntary["on_purpose"].all()


def test_every_injected_discrepancy_is_in_the_bank_files(world):
    truth = _truth(world, "settlement_discrepancies")
    lines = _bank_lines(world)
    by_payment: dict[str, list[dict[str, str]]] = {}
    for row in lines:
        by_payment.setdefault(row["payment_id"], []).append(row)
    assert set(truth["kind"]) == {"missing", "short_paid", "duplicated", "late"}
    for d in truth.itertuples():
        got = by_payment.get(d.payment_id, [])
        assert len(got) == d.bank_copies
        if d.kind == "missing":
            assert got == []
        elif d.kind == "duplicated":
            assert len(got) == 2 and got[0] == got[1]
        elif d.kind == "short_paid":
            assert _minor(got[0]["net"]) == d.bank_net_minor < d.expected_net_minor
        elif d.kind == "late" and got:
            when = datetime.fromisoformat(got[0]["settled_at"])
            assert when > d.expected_settled_at.to_pydatetime()
    # everything not injected matches the gateway exactly: fees, GST on fees, net, T+2
    conn = sqlite3.connect(world.gateway_state_path)
    pays = {r[0]: r[1:] for r in conn.execute(
        "select id, method, amount_minor, created_at from sim_payments")}  # fmt: skip
    conn.close()
    injected = set(truth["payment_id"])
    clean = [r for r in lines if r["payment_id"] not in injected]
    assert clean and Counter(r["payment_id"] for r in clean).most_common(1)[0][1] == 1
    for r in clean:
        method, amount, created = pays[r["payment_id"]]
        fee, tax = fee_and_tax(amount, method)
        assert (_minor(r["gross"]), _minor(r["fee"]), _minor(r["tax"])) == (amount, fee, tax)
        assert _minor(r["net"]) == amount - fee - tax
        assert tax == (fee * 18 + 50) // 100
        settled = datetime.fromisoformat(r["settled_at"])
        assert settled == settlement_time(datetime.fromtimestamp(created, UTC)) or (
            settled >= settlement_time(datetime.fromtimestamp(created, UTC))  # UPI resolves later
        )


def test_fraud_is_tagged_only_in_truth(world):
    fraud = _truth(world, "fraud_transactions")
    assert len(fraud) > 0
    assert (fraud["amount_minor"] >= 5 * fraud["plan_price_minor"]).all()
    hours_ist = (fraud["at"].dt.tz_convert("Asia/Kolkata").dt.hour).tolist()
    assert all(1 <= h <= 5 for h in hours_ist)
    conn = sqlite3.connect(world.gateway_state_path)
    meta = conn.execute(
        f"select metadata, pm_token from sim_payments where id in ({','.join('?' * len(fraud))})",
        list(fraud["gateway_payment_id"]),
    ).fetchall()  # fmt: skip
    all_meta = " ".join(r[0] for r in conn.execute("select metadata from sim_payments"))
    conn.close()
    assert len(meta) == len(fraud) and "fraud" not in all_meta.lower()
    eng = create_engine(world.ledger_url)
    with eng.connect() as c:
        known = {r[0] for r in c.execute(text("select gateway_token from payment_methods"))}
    eng.dispose()
    assert not {tok for _, tok in meta} & known  # fresh instruments, never the customer's own


def test_truth_is_kept_apart(world):
    eng = create_engine(world.ledger_url)
    ledger_tables = set(inspect(eng).get_table_names())
    eng.dispose()
    assert not {t for t in ledger_tables if "truth" in t or "fraud" in t or "churn" in t}
    conn = sqlite3.connect(world.gateway_state_path)
    gw_tables = {r[0] for r in conn.execute("select name from sqlite_master where type='table'")}
    conn.close()
    assert all(t.startswith(("sim_", "sqlite_")) and "truth" not in t for t in gw_tables)
    assert world.truth_dir.parent == world.run_dir and not str(world.bank_dir).startswith(
        str(world.truth_dir)
    )
    con = duckdb.connect(str(world.warehouse_path), read_only=True)
    try:
        schemas = {r[0] for r in con.execute(
            "select distinct table_schema from information_schema.tables").fetchall()}  # fmt: skip
        tables = {r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema='sim_truth'"
        ).fetchall()}  # fmt: skip
        n = con.execute("select count(*) from sim_truth.customers").fetchone()[0]
    finally:
        con.close()
    assert schemas == {"sim_truth"}
    assert {"customers", "churn_events", "fraud_transactions", "settlement_discrepancies"} <= tables
    assert n == 60


def test_every_kind_is_forced_onto_a_ledger_payment():
    from simulation.settlement import KINDS, RATES, _assign

    # Many lines, few of them ledger payments: forced kinds never land on a fraud charge.
    rows = [{"payment_id": f"pi_{i:04d}", "in_ledger": i % 10 == 0} for i in range(400)]
    kinds = _assign(7, rows)
    ledger = {r["payment_id"] for r in rows if r["in_ledger"]}
    assert {kinds[p] for p in kinds if p in ledger} == set(KINDS)
    # Only fraud charges: nothing to force onto, so only the per-payment draws remain.
    fraud_only = [{"payment_id": f"pi_{i:04d}", "in_ledger": False} for i in range(40)]
    drawn = {
        r["payment_id"] for r in fraud_only
        if sim_world.uniform(7, "recon", r["payment_id"]) < sum(RATES.values())
    }  # fmt: skip
    assert set(_assign(7, fraud_only)) == drawn


def test_discrepancies_name_payment_time_and_kinds_hit_ledger_payments(world):
    truth = _truth(world, "settlement_discrepancies")
    conn = sqlite3.connect(world.gateway_state_path)
    pays = {
        r[0]: r[1:] for r in conn.execute("select id, created_at, invoice_id from sim_payments")
    }
    conn.close()
    for d in truth.itertuples():
        created, _ = pays[d.payment_id]
        assert d.payment_created_at.to_pydatetime() == datetime.fromtimestamp(created, UTC)
    on_ledger = {d.kind for d in truth.itertuples() if pays[d.payment_id][1] is not None}
    assert on_ledger == {"missing", "short_paid", "duplicated", "late"}


def test_unsettled_payments_are_exactly_the_clean_charges_not_yet_in_the_bank(world):
    unsettled = _truth(world, "unsettled_payments")
    injected = set(_truth(world, "settlement_discrepancies")["payment_id"])
    in_bank = {r["payment_id"] for r in _bank_lines(world)}
    conn = sqlite3.connect(world.gateway_state_path)
    succeeded = {r[0]: r[1:] for r in conn.execute(
        "select id, created_at, invoice_id from sim_payments where status = 'succeeded'")}  # fmt: skip
    conn.close()
    expected = {p for p in succeeded if p not in injected and p not in in_bank}
    assert expected and set(unsettled["payment_id"]) == expected
    assert unsettled["payment_id"].is_unique
    end = pd.Timestamp(world.end, tz="Asia/Kolkata")
    for u in unsettled.itertuples():
        created, invoice = succeeded[u.payment_id]
        assert u.payment_created_at.to_pydatetime() == datetime.fromtimestamp(created, UTC)
        assert u.in_ledger == (invoice is not None)
        assert (
            u.expected_settled_at
            == pd.Timestamp(settlement_time(datetime.fromtimestamp(created, UTC)))
            or u.expected_settled_at > u.payment_created_at
        )  # UPI resolves later
        assert u.payment_created_at < end


def _rows(url: str, sql: str) -> list[tuple]:
    eng = create_engine(url)
    with eng.connect() as conn:
        out = [tuple(r) for r in conn.execute(text(sql))]
    eng.dispose()
    return out


def test_the_world_runs_the_products_dunning(world):
    url = world.ledger_url
    failed = {r[0] for r in _rows(url, "select invoice_id from payment_attempts"
                                       " where status = 'failed'")}  # fmt: skip
    states = {
        r[0]: (json.loads(r[1])["status"], r[2], r[3])
        for r in _rows(url, "select c.invoice_id, c.dunning_json, c.closed, i.status"
                            " from payments_collection_state c join invoices i"
                            " on i.id = c.invoice_id where c.dunning_json is not null")
    }  # fmt: skip
    assert failed and set(states) == failed  # every failed payment started the product's dunning
    for status, closed, invoice_status in states.values():
        if invoice_status == "paid":
            assert (status, closed) == ("recovered", 1)  # the closing run recorded it
        elif invoice_status == "uncollectible":
            assert (status, closed) == ("canceled", 1)
        else:
            assert status in ("active", "restricted") and closed == 0
    notes = _rows(url, "select n.invoice_id, n.kind, n.mail_delivery_id, d.recipient, c.email"
                       " from payments_dunning_notifications n join customers c"
                       " on c.id = n.customer_id left join document_deliveries d"
                       " on d.id = n.mail_delivery_id")  # fmt: skip
    kinds = Counter(k for _, k, *_ in notes)
    assert kinds["remind"] > 0 and kinds["recovered"] > 0 and kinds["cancel"] > 0
    for _, kind, delivery, recipient, email in notes:
        assert (delivery is None) == (kind == "recovered") and recipient in (None, email)
    # every involuntary churn is the product's cancel step: subscription canceled, invoice
    # written off, after a cancel notification
    canceled = {r[0]: r[1] for r in _rows(url, "select i.subscription_id, i.status from"
                                               " payments_dunning_notifications n join invoices i"
                                               " on i.id = n.invoice_id where n.kind = 'cancel'")}  # fmt: skip
    churn = _truth(world, "churn_events")
    involuntary = set(churn[churn.kind == "involuntary"]["subscription_id"])
    assert involuntary and involuntary <= set(canceled)
    subs = dict(_rows(url, "select id, status from subscriptions"))
    assert all(subs[sub] == "canceled" and st == "uncollectible" for sub, st in canceled.items())
    # restricted by dunning: unpaid until paid, canceled, or paid and active again
    restricted = {r[0] for r in _rows(url, "select subscription_id from subscription_events"
                                           " where detail_json like '%dunning_restricted%'")}  # fmt: skip
    assert {s for s, st in subs.items() if st == "unpaid"} <= restricted


def test_the_product_dunning_run_has_nothing_left_to_do_at_the_worlds_end(world, tmp_path):
    from billing_jobs.ledger import make_engine
    from billing_jobs.payments.dunning_run import run_dunning

    copy = tmp_path / "ledger.sqlite"
    src = sqlite3.connect(world.ledger_url.split("///", 1)[1])
    dst = sqlite3.connect(copy)
    src.backup(dst)
    src.close()
    dst.close()
    engine = make_engine(f"sqlite:///{copy}")
    try:
        out = run_dunning(engine, datetime.fromisoformat(f"{world.end}T00:00:00+05:30"))
    finally:
        engine.dispose()
    assert out == {"notifications": 0, "mails_queued": 0, "restricted": [], "canceled": [],
                   "unpaid": [], "recovered": []}  # fmt: skip
