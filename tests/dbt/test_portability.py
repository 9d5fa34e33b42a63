"""The dbt project stays portable: it compiles for Spark without a connection, and no
DuckDB-only function appears outside an adapter-dispatched macro."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DBT_DIR = REPO_ROOT / "dbt_project"
# Functions or operators DuckDB has and Spark (or ANSI SQL) does not.
DUCKDB_ONLY = re.compile(
    r"\b(isodow|date_diff|date_part|strftime|strptime|epoch|list_\w+|struct_pack|"
    r"regexp_matches|try_cast|date_add|make_date)\s*\(|::|//"
)


def test_models_use_no_duckdb_only_sql_outside_dispatched_macros():
    offenders = []
    for sql in (DBT_DIR / "models").rglob("*.sql"):
        text = re.sub(r"--[^\n]*", "", sql.read_text())  # comments may mention anything
        if DUCKDB_ONLY.search(text):
            offenders.append(sql.name)
    assert offenders == []


def test_dbt_compiles_for_spark_without_a_connection(tmp_path: Path):
    pytest.importorskip("dbt.adapters.spark")
    env = {**os.environ, "PAYSIGHT_DBT_TARGET": "spark", "PAYSIGHT_SPARK_DIR": str(tmp_path)}
    proc = subprocess.run(
        [
            str(REPO_ROOT / ".venv" / "bin" / "dbt"),
            "compile",
            "--no-populate-cache",
            # unit tests introspect column types of their inputs, so they need a warehouse
            "--exclude",
            "resource_type:unit_test",
            "--project-dir",
            str(DBT_DIR),
            "--profiles-dir",
            str(DBT_DIR),
            "--target-path",
            str(tmp_path / "target"),
            "--vars",
            "{as_of: '2025-06-30'}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    compiled = tmp_path / "target" / "compiled" / "paysight" / "models"
    recon = next(compiled.rglob("fct_reconciliation.sql")).read_text()
    assert "datediff" in recon  # Spark's spelling, from dbt.datediff
    features = next(compiled.rglob("int_bank_days_numbered.sql")).read_text()
    assert "dayofweek(" in features and "isodow" not in features
