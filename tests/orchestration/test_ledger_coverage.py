"""All of the ledger reaches the warehouse: every table of the one ledger schema is copied by the
ingestion asset or named in NOT_COPIED with its reason, and each copied table has a raw source
contract equal to what the copy writes and a staging model with a primary-key test."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
import yaml

from billing_jobs.ledger import metadata, upgrade_ledger
from ingestion.ledger_copy import APPEND_ONLY, EXCLUDED_COLUMNS, NOT_COPIED, copy_ledger_tables
from orchestration.defs.ingestion.assets import LEDGER_TABLES

DBT = Path(__file__).resolve().parents[2] / "dbt_project"
STAGING = DBT / "models" / "staging" / "ledger"


def _sources() -> dict[str, list[str]]:
    doc = yaml.safe_load((DBT / "models" / "staging" / "_raw__sources.yml").read_text())
    return {t["name"]: [c["name"] for c in t["columns"]] for t in doc["sources"][0]["tables"]}


def _staging_models() -> dict[str, dict]:
    doc = yaml.safe_load((STAGING / "_ledger__models.yml").read_text())
    return {m["name"]: m for m in doc["models"]}


def _copied_columns(table: str) -> list[str]:
    excluded = EXCLUDED_COLUMNS.get(table, frozenset())
    return [c.name for c in metadata.tables[table].columns if c.name not in excluded]


def _model_name(table: str) -> str:
    return f"stg_ledger__{table.removeprefix('ledger_')}"


def test_every_ledger_table_is_copied_or_has_a_reason():
    copied, kept = set(LEDGER_TABLES), set(NOT_COPIED)
    assert len(LEDGER_TABLES) == len(copied)
    assert copied & kept == set()
    assert copied | kept == set(metadata.tables), (
        "ledger tables neither copied nor kept back with a reason: "
        f"{sorted(set(metadata.tables) - copied - kept)}; unknown: "
        f"{sorted((copied | kept) - set(metadata.tables))}"
    )
    assert all(len(why) > 20 for why in NOT_COPIED.values())
    assert copied >= APPEND_ONLY
    assert set(EXCLUDED_COLUMNS) <= copied


@pytest.mark.parametrize("table", LEDGER_TABLES)
def test_each_copied_table_has_a_source_contract_and_a_staging_model(table):
    sources = _sources()
    assert sources.get(f"ledger_{table}") == _copied_columns(table)
    model = _model_name(table)
    sql = (STAGING / f"{model}.sql").read_text()
    assert f"source('raw', 'ledger_{table}')" in sql
    spec = _staging_models()[model]
    tests = {c["name"]: [t if isinstance(t, str) else next(iter(t)) for t in c.get("data_tests", [])]
             for c in spec.get("columns", [])}  # fmt: skip
    key = [c.name for c in metadata.tables[table].primary_key.columns]
    if len(key) == 1:
        assert any({"unique", "not_null"} <= set(t) for t in tests.values()), model
    else:
        combos = [
            t["unique_combination"]["arguments"]["columns"]
            for t in spec.get("data_tests", [])
            if isinstance(t, dict) and "unique_combination" in t
        ]
        assert [len(c) for c in combos] == [len(key)], model
        assert all("not_null" in tests.get(c, []) for c in combos[0]), model


def test_copying_every_table_of_an_empty_ledger_matches_the_contract(tmp_path):
    engine = upgrade_ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        copies = copy_ledger_tables(engine, con, LEDGER_TABLES, metadata=metadata)
        assert {c.table for c in copies} == set(LEDGER_TABLES)
        for table in LEDGER_TABLES:
            cols = [
                r[0]
                for r in con.execute(
                    "select column_name from information_schema.columns where table_schema = "
                    "'raw' and table_name = ? order by ordinal_position",
                    [f"ledger_{table}"],
                ).fetchall()
            ]
            assert cols == _copied_columns(table), table
            assert not set(cols) & EXCLUDED_COLUMNS.get(table, frozenset())
    finally:
        con.close()
        engine.dispose()
