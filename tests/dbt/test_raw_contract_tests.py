"""Every raw source carries contract tests (keys, money, timestamps, enums, currencies), they
pass on a clean world, and each one fails on the fault it exists for."""

from __future__ import annotations

import re
import shutil

import duckdb
import pytest
import yaml

from tests.dbt.conftest import DBT_DIR

SOURCES = DBT_DIR / "models" / "staging" / "_raw__sources.yml"


def _tables() -> list[dict]:
    return yaml.safe_load(SOURCES.read_text())["sources"][0]["tables"]


def _test_names(entries) -> set[str]:
    return {next(iter(t)) if isinstance(t, dict) else t for t in entries or ()}


@pytest.mark.parametrize("table", _tables(), ids=lambda t: t["name"])
def test_every_raw_source_has_a_key_and_its_money_and_timestamps_checked(table):
    table_tests = _test_names(table.get("data_tests"))
    column_tests = {c["name"]: _test_names(c.get("data_tests")) for c in table["columns"]}
    has_key = "unique_combination" in table_tests or any(
        {"unique", "not_null"} <= tests for tests in column_tests.values()
    )
    assert has_key, f"{table['name']}: no key test"
    money = [c["name"] for c in table["columns"] if c["name"].endswith("_minor")]
    stamps = [c["name"] for c in table["columns"] if "timestamp" in str(c.get("data_type"))]
    if money:
        assert "minor_units" in table_tests, f"{table['name']}: money unchecked"
    if stamps:
        assert "timestamps_in_range" in table_tests, f"{table['name']}: timestamps unchecked"
    for name, tests in column_tests.items():
        if name == "currency":
            assert "currency_code" in tests, f"{table['name']}.currency unchecked"
        if name == "gateway":
            assert "accepted_values" in tests, f"{table['name']}.gateway unchecked"


FAULTS = {
    # test name fragment -> SQL planting exactly that fault in the raw layer
    "source_unique_raw_ledger_customers_id": (
        "insert into raw.ledger_customers by name select * from raw.ledger_customers limit 1"
    ),
    "source_minor_units_raw_ledger_invoices_": (
        "update raw.ledger_invoices set total_minor = -1 where id = (select min(id) from raw.ledger_invoices)"
    ),
    "source_minor_units_raw_gateway_refunds_": (
        "alter table raw.gateway_refunds alter amount_minor type double;"
        "update raw.gateway_refunds set amount_minor = amount_minor + 0.5"
    ),
    "source_timestamps_in_range_raw_ledger_subscriptions_": (
        "update raw.ledger_subscriptions set canceled_at = timestamp '1970-01-01' where id = 1"
    ),
    "source_timestamps_in_range_raw_gateway_charges_": (
        "update raw.gateway_charges set created_at = timestamp '2025-08-15 00:00:00'"
        " where charge_id = (select min(charge_id) from raw.gateway_charges)"
    ),
    "source_accepted_values_raw_gateway_charges_gateway": (
        "update raw.gateway_charges set gateway = 'paypal'"
        " where charge_id = (select max(charge_id) from raw.gateway_charges)"
    ),
    "source_accepted_values_raw_ledger_invoices_status": (
        "update raw.ledger_invoices set status = 'settled' where id = (select max(id) from raw.ledger_invoices)"
    ),
    "source_currency_code_raw_ledger_prices_currency": (
        "update raw.ledger_prices set currency = 'inr' where id = (select min(id) from raw.ledger_prices)"
    ),
    "source_unique_raw_bank_settlements_bank_row_id": (
        "insert into raw.bank_settlements by name select * from raw.bank_settlements limit 1"
    ),
}


def test_each_contract_test_fails_on_its_fault_and_blocks_the_models_it_guards(warehouse, tmp_path):
    broken = tmp_path / "broken.duckdb"
    shutil.copy(warehouse.path, broken)
    con = duckdb.connect(str(broken))
    try:
        for sql in FAULTS.values():
            for statement in sql.split(";"):
                con.execute(statement)
        assert con.execute("select count(*) from raw.gateway_refunds").fetchone()[0] > 0
    finally:
        con.close()
    vars_ = f"{{as_of: '{warehouse.as_of}'}}"
    result = warehouse.run_dbt(
        ["test", "--select", "source:raw", "--vars", vars_], broken, tmp_path / "target"
    )
    assert result.returncode != 0
    failed = set(re.findall(r"FAIL \d+ (source_\S+)", result.stdout))
    for fragment in FAULTS:
        assert any(name.startswith(fragment) for name in failed), (
            f"{fragment} did not fail:\n{result.stdout[-3000:]}"
        )
    # Nothing else fails: each rule catches its own fault only.
    unexpected = {n for n in failed if not any(n.startswith(f) for f in FAULTS)}
    assert not unexpected, unexpected
    # dbt build skips the models downstream of a failed source test.
    built = warehouse.run_dbt(
        ["build", "--select", "source:raw.ledger_prices+", "--vars", vars_],
        broken,
        tmp_path / "target",
    )
    assert built.returncode != 0
    assert re.search(r"SKIP \S* ?relation \S*stg_ledger_prices|SKIP=[1-9]", built.stdout), (
        built.stdout[-3000:]
    )
