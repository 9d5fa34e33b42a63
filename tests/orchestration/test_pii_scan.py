"""`paysight scan-pii`: planted card numbers, CVVs, UPI PINs and API keys are found in real
SQLite, DuckDB and log files (and reported without their value); identifiers, timestamps and
Luhn-invalid numbers are not. The demo world is scanned in tests/e2e/test_pii_in_demo.py."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from orchestration.pii_scan import card_network, luhn_ok, scan, scan_bytes, scan_file

VISA = "4111111111111111"  # a Luhn-valid test number of each network
AMEX = "378282246310005"
RUPAY = "6522094500000012"  # not a real card: a RuPay prefix and a Luhn check digit


def test_luhn_and_networks():
    assert luhn_ok(VISA) and luhn_ok(AMEX) and luhn_ok(RUPAY)
    assert not luhn_ok("4111111111111112")
    assert card_network(VISA) == "visa" and card_network(AMEX) == "amex"
    assert card_network("1700000000000") is None  # a millisecond timestamp


@pytest.mark.parametrize(
    ("data", "kinds"),
    [
        (f"card={VISA}\n".encode(), ["card_number"]),
        (b"4111 1111 1111 1111", ["card_number"]),
        (b"3782-822463-10005", ["card_number"]),
        (f'{{"number": "{AMEX}"}}'.encode(), ["card_number"]),
        (b'{"cvv": "123"}', ["cvv_or_pin"]),
        (b"upi_pin=4321", ["cvv_or_pin"]),
        (b"Authorization: Bearer sk_live_51HqLyjWDarjtT1zdp7dcXaaaa", ["api_key"]),
        (b"key_id=rzp_test_1DP5mmOlF5G5ag", ["api_key"]),
        (b"4111111111111112", []),  # fails Luhn
        (b"pi_cb2349bce4404091436774c6", []),  # digits inside an id
        (b"2025-01-23 04:05:50.2273812025-01-24 06:30:00", []),  # timestamps run together
        (b"amount 0.4111111111111111", []),  # a fraction
        (b"tok_card_hdfc_visa_4242_12_2030", []),  # a gateway token is not a number
    ],
)
def test_scan_bytes_finds_exactly_what_it_must(data, kinds):
    found = list(scan_bytes(data, "x"))
    assert [f.kind for f in found] == kinds
    for f in found:
        assert VISA not in f.hint and AMEX not in f.hint  # never the value


def test_a_match_across_the_chunk_border_is_found(tmp_path, monkeypatch):
    import orchestration.pii_scan as ps

    monkeypatch.setattr(ps, "CHUNK", 1000)
    path = tmp_path / "big.log"
    path.write_bytes(b"x" * 992 + b" " + VISA.encode() + b" " + b"y" * 3000)
    assert [f.offset for f in scan_file(path)] == [993]


def _settings(data: Path):
    from orchestration.lib.env import load_settings

    return load_settings(
        data_dir=data,
        ledger_url=f"sqlite:///{data / 'ledger.sqlite'}",
        warehouse_path=data / "warehouse.duckdb",
        landing_url=str(data / "landing"),
        documents_url=str(data / "invoices"),
        mlflow_tracking_uri=f"sqlite:///{data / 'mlflow.db'}",
        mlflow_artifacts_dir=data / "mlartifacts",
    )


def test_planted_values_in_real_stores_are_found_and_secrets_are_skipped(tmp_path):
    settings = _settings(tmp_path / "data")
    db = sqlite3.connect(tmp_path / "data" / "ledger.sqlite")
    db.execute("create table notes (id integer primary key, body text)")
    db.executemany("insert into notes (body) values (?)", [("fine",), (f"paid with {VISA}",)])
    db.commit()
    db.close()
    con = duckdb.connect(str(settings.warehouse_path))
    con.execute("create schema raw; create table raw.t (memo varchar)")
    con.execute("insert into raw.t values (?)", [f"amex {AMEX} ok"])
    con.execute("checkpoint")
    con.close()
    (tmp_path / "data" / "landing" / "hook.json").write_text('{"upi_pin": "123456"}')
    (tmp_path / "data" / "secrets").mkdir()
    (tmp_path / "data" / "secrets" / "key").write_text("sk_live_" + "a" * 30)
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "run.log").write_text("x " + RUPAY + " y")

    out = scan(settings, [logs])
    where = {(Path(f["path"]).name, f["kind"]) for f in out["findings"]}
    assert ("ledger.sqlite", "card_number") in where
    assert ("warehouse.duckdb", "card_number") in where
    assert ("hook.json", "cvv_or_pin") in where
    assert ("run.log", "card_number") in where
    assert not any(name == "key" for name, _ in where)

    from orchestration.cli import app

    result = CliRunner().invoke(app, ["scan-pii", "--also", str(logs), "--json"],
                                env={"PAYSIGHT_DATA_DIR": str(tmp_path / "data")})  # fmt: skip
    assert result.exit_code == 1, result.output
    assert VISA not in result.output and AMEX not in result.output and "123456" not in result.output
    assert len(json.loads(result.output)["findings"]) == len(out["findings"])


def test_text_hidden_by_duckdb_and_parquet_compression_is_found(tmp_path):
    """FSST-compressed DuckDB strings and zstd Parquet pages hide text from a byte scan; the
    scan reads those files' text columns decoded and reports table, column and row."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    settings = _settings(tmp_path / "data")
    con = duckdb.connect(str(settings.warehouse_path))
    con.execute(
        "create schema raw; create table raw.notes as select 'ref-' || md5(i::varchar) || "
        '\' customer \' || i as "memo ""x""" from range(100000) r(i)'
    )
    con.execute(f'update raw.notes set "memo ""x""" = \'paid {VISA}\' where rowid = 4242')
    con.execute("checkpoint")
    con.close()
    rows = [f"ref-{i:08d}-customer" for i in range(50000)]
    rows[777] = f"card {AMEX}"
    landing = tmp_path / "data" / "landing"
    pq.write_table(pa.table({"note": rows}), landing / "export.parquet", compression="zstd")

    out = scan(settings)
    assert out["unreadable"] == []
    found = {(f["path"].split("::")[-1], f["offset"], f["kind"]) for f in out["findings"]}
    assert ('raw.notes.memo "x"', 4242, "card_number") in found
    assert ("export.parquet.note", 777, "card_number") in found


def test_a_warehouse_being_written_is_reported_unreadable_and_fails(tmp_path):
    import subprocess
    import sys

    settings = _settings(tmp_path / "data")
    duckdb.connect(str(settings.warehouse_path)).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('held', flush=True); time.sleep(120)", str(settings.warehouse_path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        out = scan(settings)
        assert [Path(u["path"]).name for u in out["unreadable"]] == ["warehouse.duckdb"]
        from orchestration.cli import app

        result = CliRunner().invoke(
            app, ["scan-pii"], env={"PAYSIGHT_DATA_DIR": str(tmp_path / "data")}
        )
        assert result.exit_code == 1, result.output
        assert "unreadable" in result.output
    finally:
        holder.kill()
        holder.wait()


def test_the_installations_own_secrets_are_found_outside_the_secrets_folder(tmp_path):
    data = tmp_path / "data"
    secret = "whsec_" + "Zq3" * 12
    (data / "secrets").mkdir(parents=True)
    (data / "secrets" / "simulated_webhook_secret").write_text(secret + "\n")
    from orchestration.lib.env import load_settings

    settings = load_settings(
        data_dir=data,
        warehouse_path=data / "warehouse.duckdb",
        smtp_url="smtp://mailer:s3cret-pass-word@127.0.0.1:2525",
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "ok.log").write_text("verified with the simulated secret (whsec_...)\n")
    (logs / "run.log").write_text("x" * 5000 + f" signing with {secret} and s3cret-pass-word\n")
    out = scan(settings, [logs])
    found = sorted((Path(f["path"]).name, f["kind"]) for f in out["findings"])
    assert found == [("run.log", "own_secret"), ("run.log", "own_secret")], found
    assert all(secret not in json.dumps(f) for f in out["findings"])
