"""Landing zone -> raw tables: webhook journal and bank files, with quarantine and cursors."""

import json
import time
from datetime import UTC, datetime

import duckdb
import pytest
from starlette.testclient import TestClient

from ingestion.landing_loads import load_bank_settlements, load_webhook_events
from ingestion.webhooks.app import create_app
from ingestion.webhooks.config import WebhookConfig
from ingestion.webhooks.journal import encode_line, journal_root
from ingestion.webhooks.signatures import stripe_signature

SECRET = "whsec_test"


def _post(client: TestClient, event_id: str, event_type: str = "charge.succeeded"):
    body = json.dumps({"id": event_id, "object": "event", "type": event_type}).encode()
    t = int(time.time())
    headers = {"Stripe-Signature": f"t={t},v1={stripe_signature(SECRET, t, body)}"}
    return client.post("/webhooks/stripe", content=body, headers=headers)


def test_webhook_events_load_once_and_incrementally(tmp_path):
    landing = tmp_path / "landing"
    config = WebhookConfig(landing_dir=landing, secrets={"stripe": [SECRET]})
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    now = datetime.now(UTC)
    with TestClient(create_app(config)) as client:
        for i in range(5):
            assert _post(client, f"evt_{i}").json() == {"status": "accepted"}
        assert _post(client, "evt_1").json() == {"status": "duplicate"}
        first = load_webhook_events(landing, con, now)
        assert first.loaded == 5 and first.quarantined == 0
        assert load_webhook_events(landing, con, now).loaded == 0  # nothing new
        _post(client, "evt_5")
        assert _post(client, "evt/../../etc").status_code == 400  # hostile id never lands
    # A corrupted journal line (unverified, unknown source) is quarantined, not loaded.
    bad = encode_line(
        received_at=now.isoformat(),
        source="paypal",
        event_id="evt_x",
        event_type="x",
        signature_verified=False,
        body="{}",
    )
    journal = journal_root(landing) / "stripe" / "2025-01-01" / "corrupt.jsonl"
    journal.parent.mkdir(parents=True, exist_ok=True)
    journal.write_bytes(bad)
    third = load_webhook_events(landing, con, now)
    assert third.loaded == 1 and third.quarantined == 1
    assert con.execute("select count(*) from raw.webhook_events").fetchone()[0] == 6
    reason = con.execute("select quarantine_reason from raw.quarantine_webhook_events").fetchone()[
        0
    ]
    assert "source" in reason and "signature_verified" in reason


HEADER = "settlement_id,utr,payment_id,gross,fee,tax,net,settled_at,currency\n"


def test_bank_files_load_with_rejects_quarantined(tmp_path):
    bank = tmp_path / "bank"
    bank.mkdir()
    (bank / "2025-05-02.csv").write_text(
        HEADER
        + "setl_1,UTR0001,pay_1,1000.00,20.00,3.60,976.40,2025-05-02T11:00:00+05:30,INR\n"
        + "setl_1,UTR0001,pay_2,500.00,10.00,1.80,488.20,2025-05-02T11:00:00+05:30,INR\n"
        + "setl_1,UTR0001,pay_3,abc,10.00,1.80,488.20,2025-05-02T11:00:00+05:30,INR\n"
        + "setl_1,UTR0001,=cmd|' /C calc'!A0,1.00,0,0,1.00,2025-05-02T11:00:00+05:30,INR\n"
    )
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    now = datetime(2025, 5, 4, tzinfo=UTC)
    report = load_bank_settlements(bank, con, now)
    assert (report.files, report.loaded, report.quarantined) == (1, 2, 2)
    rows = con.execute(
        "select payment_id, gross_minor, fee_minor, tax_minor, net_minor from raw.bank_settlements "
        "order by payment_id"
    ).fetchall()
    assert rows == [("pay_1", 100000, 2000, 360, 97640), ("pay_2", 50000, 1000, 180, 48820)]
    reasons = [
        r[0]
        for r in con.execute(
            "select quarantine_reason from raw.quarantine_bank_settlements"
        ).fetchall()
    ]
    assert len(reasons) == 2 and all(reasons)
    # A second load skips files already loaded; a new file is picked up.
    assert load_bank_settlements(bank, con, now).files == 0
    (bank / "2025-05-03.csv").write_text(
        HEADER + "setl_2,UTR0002,pay_4,10.00,0,0,10.00,2025-05-03T11:00:00+05:30,INR\n"
    )
    assert load_bank_settlements(bank, con, now).loaded == 1
    assert con.execute("select count(*) from raw.bank_settlements").fetchone()[0] == 3


def test_an_unusable_bank_file_is_quarantined_whole(tmp_path):
    bank = tmp_path / "bank"
    bank.mkdir()
    (bank / "garbage.csv").write_bytes(b"\x00\x01 not a csv at all")
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    report = load_bank_settlements(bank, con, datetime(2025, 5, 3, tzinfo=UTC))
    assert report.loaded == 0 and report.quarantined == 1
    assert (
        con.execute("select file from raw.quarantine_bank_settlements").fetchone()[0]
        == "garbage.csv"
    )


@pytest.mark.parametrize("missing", ["nope"])
def test_missing_bank_dir_is_empty_not_an_error(tmp_path, missing):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    report = load_bank_settlements(tmp_path / missing, con, datetime(2025, 5, 3, tzinfo=UTC))
    assert report.files == 0 and report.loaded == 0


def test_a_payment_credited_twice_is_kept_for_reconciliation(tmp_path):
    bank = tmp_path / "bank"
    bank.mkdir()
    line = "setl_9,UTR9,pay_9,100.00,2.00,0.36,97.64,2025-05-02T11:00:00+05:30,INR\n"
    (bank / "dup.csv").write_text(HEADER + line + line)
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    report = load_bank_settlements(bank, con, datetime(2025, 5, 4, tzinfo=UTC))
    assert (report.loaded, report.quarantined) == (2, 0)
    assert (
        con.execute(
            "select count(*) from raw.bank_settlements where payment_id = 'pay_9'"
        ).fetchall()[0][0]
        == 2
    )


def test_a_short_payment_is_kept_for_reconciliation(tmp_path):
    bank = tmp_path / "bank"
    bank.mkdir()
    (bank / "short.csv").write_text(
        HEADER + "setl_8,UTR8,pay_8,1178.82,0.00,0.00,1155.25,2025-05-02T11:00:00+05:30,INR\n"
    )
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    report = load_bank_settlements(bank, con, datetime(2025, 5, 4, tzinfo=UTC))
    assert (report.loaded, report.quarantined) == (1, 0)
    row = con.execute("select gross_minor, net_minor from raw.bank_settlements").fetchall()[0]
    assert row == (117882, 115525)


def _cursor(con) -> dict:
    return json.loads(
        con.execute("select value from raw._cursors where name = 'bank_settlements'").fetchone()[0]
    )


@pytest.mark.parametrize(
    "broken",
    [
        b"settlement_id,utr,payment_id\n" + b"setl_1,UTR1,pay_1\n",  # missing columns
        b"settlement_id,\xff\xfe,payment_id\n",  # a header that is not UTF-8
        b"\n\n",  # no header at all
    ],
)
def test_a_rejected_bank_file_is_recorded_and_its_correction_loads(tmp_path, broken):
    bank = tmp_path / "bank"
    bank.mkdir()
    path = bank / "2025-05-02.csv"
    path.write_bytes(broken)
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    now = datetime(2025, 5, 3, tzinfo=UTC)
    report = load_bank_settlements(bank, con, now)
    assert report.rejected_files == ["2025-05-02.csv"] and report.loaded == 0
    entry = _cursor(con)["2025-05-02.csv"]
    assert entry["status"] == "rejected" and entry["reason"] and len(entry["sha256"]) == 64
    quarantined = con.execute(
        "select sha256, line_number from raw.quarantine_bank_settlements"
    ).fetchall()
    assert quarantined == [(entry["sha256"], "0")]
    assert load_bank_settlements(bank, con, now).files == 0  # the same bytes: not retried
    path.write_text(
        HEADER
        + "setl_1,UTR1,pay_1,10.00,0.20,0.04,9.76,2025-05-02,INR\n"
        + "setl_1,UTR1,pay_2,5.00,0,0,5.00,2025-05-02,INR\n"
    )
    fixed = load_bank_settlements(bank, con, now)
    assert (fixed.files, fixed.loaded, fixed.rejected_files) == (1, 2, [])
    assert _cursor(con)["2025-05-02.csv"]["status"] == "loaded"
    assert con.execute("select count(*) from raw.bank_settlements").fetchone()[0] == 2
    assert load_bank_settlements(bank, con, now).files == 0


def test_a_new_version_of_a_loaded_file_replaces_it(tmp_path):
    bank = tmp_path / "bank"
    bank.mkdir()
    path = bank / "2025-05-02.csv"
    path.write_text(HEADER + "setl_1,UTR1,pay_1,10.00,0,0,10.00,2025-05-02,INR\n"
                    + "setl_1,UTR1,pay_2,5.00,0,0,5.00,2025-05-02,INR\n")  # fmt: skip
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    now = datetime(2025, 5, 3, tzinfo=UTC)
    assert load_bank_settlements(bank, con, now).loaded == 2
    path.write_text(HEADER + "setl_1,UTR1,pay_1,10.00,0,0,10.00,2025-05-02,INR\n")
    assert load_bank_settlements(bank, con, now).loaded == 1
    assert con.execute("select payment_id from raw.bank_settlements").fetchall() == [("pay_1",)]


def test_an_unterminated_quote_in_a_loaded_file_keeps_the_next_line(tmp_path):
    bank = tmp_path / "bank"
    bank.mkdir()
    (bank / "q.csv").write_text(
        HEADER
        + 'setl_1,"UTR1,pay_1,10.00,0,0,10.00,2025-05-02,INR\n'
        + "setl_1,UTR1,pay_2,5.00,0,0,5.00,2025-05-02,INR\n"
    )
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    report = load_bank_settlements(bank, con, datetime(2025, 5, 3, tzinfo=UTC))
    assert (report.loaded, report.quarantined) == (1, 1)
    assert con.execute("select payment_id from raw.bank_settlements").fetchall() == [("pay_2",)]


def test_cursors_of_older_releases_retry_files_that_loaded_nothing(tmp_path):
    """The old cursor was a list of names, rejected files included: those with no rows are
    tried again, those with rows stay loaded."""
    bank = tmp_path / "bank"
    bank.mkdir()
    good = HEADER + "setl_1,UTR1,pay_1,10.00,0,0,10.00,2025-05-02,INR\n"
    (bank / "a.csv").write_text(good)
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    now = datetime(2025, 5, 3, tzinfo=UTC)
    assert load_bank_settlements(bank, con, now).loaded == 1
    con.execute("update raw._cursors set value = ? where name = 'bank_settlements'",
                [json.dumps(["a.csv", "b.csv"])])  # fmt: skip
    (bank / "b.csv").write_text(good.replace("pay_1", "pay_b"))  # was rejected, now fixed
    report = load_bank_settlements(bank, con, now)
    assert (report.files, report.loaded) == (1, 1)
    assert set(_cursor(con)) == {"a.csv", "b.csv"}
