"""benchmarks/faults.py with 2 kills per job: every count is zero, and each counter sees a
planted fault (a duplicated invoice, a skipped number, a second charge, a lost event, a mail
sent twice), so the checker cannot pass by counting nothing."""

from __future__ import annotations

import json
import pickle
import shutil
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from benchmarks.faults import JOBS, main, table
from benchmarks.faults_check import (
    Faults,
    charge_faults,
    invoice_faults,
    mail_faults,
    webhook_faults,
)

# The jobs run in forked processes (benchmarks/faults_jobs.py), so the worlds are built in a
# fresh interpreter: a fork of a test worker that has already rendered a PDF inherits typst's
# thread-pool lock held by a thread the child does not have, and hangs in its first render.
RUN = (
    "import pickle, sys; from pathlib import Path; from benchmarks.faults import run_faults; "
    "rows = run_faults(Path(sys.argv[1]), kills=2, seed=3, customers=12, months=1); "
    "Path(sys.argv[2]).write_bytes(pickle.dumps(rows))"
)


@pytest.fixture(scope="module")
def worlds(tmp_path_factory) -> tuple[Path, list]:
    base = tmp_path_factory.mktemp("faults")
    out = base.parent / f"{base.name}.rows.pickle"
    subprocess.run([sys.executable, "-c", RUN, str(base), str(out)], check=True, timeout=850,
                   cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    return base, pickle.loads(out.read_bytes())


def test_two_kills_per_job_leave_no_fault(worlds):
    _, rows = worlds
    assert [r.job for r in rows] == list(JOBS)
    for r in rows:
        assert r.kills == 2, r
        assert r.runs >= 2 * r.kills, r  # each kill was followed by a re-run
        assert r.faults == Faults(), (r.job, r.faults)
    printed = table(rows)
    assert printed.splitlines()[-1].split("|")[0].strip() == "total"
    assert "duplicate_invoices" in printed.splitlines()[0]


def _copy(src: Path, dst: Path) -> Path:
    shutil.copy(src, dst)
    return dst


def test_the_ledger_counters_see_planted_duplicates_gaps_and_double_charges(worlds, tmp_path):
    base, _ = worlds
    ledger = _copy(base / "collection" / "ledger.sqlite", tmp_path / "ledger.sqlite")
    gateway = _copy(base / "collection" / "gateway.sqlite", tmp_path / "gateway.sqlite")
    assert invoice_faults(ledger) == Faults()
    assert charge_faults(ledger, gateway) == Faults()  # the world as built, too
    conn = sqlite3.connect(ledger)
    # The ledger's own unique index refuses a second invoice for a period; the checker must
    # also hold for a store without it (a schema that drifted), so the copy loses it.
    conn.execute("drop index uq_invoices_recurring_period")
    cols = [r[1] for r in conn.execute("pragma table_info(invoices)")]
    fy, number = conn.execute(
        "select financial_year, number from invoices where number is not null "
        "order by financial_year desc, id desc limit 1"
    ).fetchone()
    top = int(number.rsplit("/", 1)[1])
    row = conn.execute(
        "select * from invoices where kind = 'recurring' and financial_year = ? limit 1", (fy,)
    ).fetchone()
    copy = dict(zip(cols, row, strict=True)) | {"id": None}
    prefix = copy["number"].rsplit("/", 1)[0]
    copy["number"] = f"{prefix}/{top + 2}"  # a second invoice for one period, one number skipped
    conn.execute(
        f"insert into invoices ({', '.join(cols)}) values ({', '.join('?' * len(cols))})",
        list(copy.values()),
    )
    conn.execute("update invoice_sequences set last_value = ? where financial_year = ?",
                 (top + 2, fy))  # fmt: skip
    conn.commit()
    conn.close()
    # the duplicate period, and the number top+1 never issued
    assert invoice_faults(ledger) == Faults(duplicate_invoices=1, numbering_gaps=1)

    gw = sqlite3.connect(gateway)
    gcols = [r[1] for r in gw.execute("pragma table_info(sim_payments)")]
    paid = gw.execute("select * from sim_payments where status = 'succeeded' limit 1").fetchone()
    twice = dict(zip(gcols, paid, strict=True))
    twice |= {"id": twice["id"] + "_again", "idempotency_key": twice["idempotency_key"] + "x"}
    gw.execute(
        f"insert into sim_payments ({', '.join(gcols)}) values ({', '.join('?' * len(gcols))})",
        list(twice.values()),
    )
    gw.commit()
    gw.close()
    assert charge_faults(ledger, gateway) == Faults(double_charges=1)
    # invoices before first_invoice_id are not looked at
    assert charge_faults(ledger, gateway, first_invoice_id=10**9) == Faults()


def test_a_document_queued_twice_for_one_address_is_a_duplicate_invoice(worlds, tmp_path):
    base, _ = worlds
    ledger = _copy(base / "mailer" / "ledger.sqlite", tmp_path / "ledger.sqlite")
    assert invoice_faults(ledger) == Faults()
    conn = sqlite3.connect(ledger)
    cols = [r[1] for r in conn.execute("pragma table_info(document_deliveries)")]
    row = conn.execute(
        "select * from document_deliveries where document_number is not null limit 1"
    ).fetchone()
    again = dict(zip(cols, row, strict=True))
    again |= {"id": None, "dedupe_key": "planted", "message_id": "<planted@paysight.test>"}
    conn.execute(
        f"insert into document_deliveries ({', '.join(cols)}) "
        f"values ({', '.join('?' * len(cols))})",
        list(again.values()),
    )
    conn.commit()
    conn.close()
    assert invoice_faults(ledger) == Faults(duplicate_invoices=1)


def test_the_mail_and_webhook_counters_see_planted_faults(worlds, tmp_path):
    assert mail_faults(["<a@x>", "<b@x>"]) == Faults()
    assert mail_faults(["<a@x>", "<b@x>", "<a@x>", "<a@x>"]) == Faults(duplicate_mails=2)
    landing = tmp_path / "landing"
    day = landing / "webhooks" / "stripe" / "2026-12-04"
    day.mkdir(parents=True)
    (day / "part.jsonl").write_text(json.dumps({"event_id": "evt_1"}) + "\n")
    assert webhook_faults(["evt_1"], landing) == Faults()
    assert webhook_faults(["evt_1", "evt_2"], landing) == Faults(acked_lost_events=1)
    base, _ = worlds
    landed = Counter()
    for path in (base / "webhooks" / "landing" / "webhooks").glob("*/*/*.jsonl"):
        landed.update(json.loads(x)["event_id"] for x in path.read_text().splitlines())
    assert landed and max(landed.values()) == 1  # the receiver's journal is really read
    # the warehouse side: an event landed but missing from raw.webhook_events is lost too
    warehouse = _copy(base / "webhooks" / "warehouse.duckdb", tmp_path / "wh.duckdb")
    acked = sorted(landed)
    real_landing = base / "webhooks" / "landing"
    assert webhook_faults(acked, real_landing, warehouse) == Faults()
    con = duckdb.connect(str(warehouse))
    con.execute("delete from raw.webhook_events where event_id = ?", [acked[0]])
    con.close()
    assert webhook_faults(acked, real_landing, warehouse) == Faults(acked_lost_events=1)


@pytest.mark.parametrize(
    "argv",
    [
        ["--jobs", "billing,nope"],
        ["--jobs", "billing,billing"],
        ["--jobs", ""],
        ["--kills-per-job", "0"],
        ["--kills-per-job", "two"],
        ["--customers", "-1"],
    ],
)
def test_bad_arguments_are_refused_naming_the_option(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert argv[0] in err
