"""`make docs`: dbt docs generate over a built warehouse (catalog with the marts' columns), and
the Makefile target serves them on 127.0.0.1 only. Nothing is served in tests."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_dbt_docs_generate_succeeds_on_the_built_warehouse(warehouse, tmp_path):
    assert warehouse.result.returncode == 0, warehouse.result.stdout[-3000:]
    target = tmp_path / "target"
    result = warehouse.run_dbt(["docs", "generate"], warehouse.path, target)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert (target / "index.html").is_file()
    catalog = json.loads((target / "catalog.json").read_text())
    assert not catalog.get("errors"), catalog["errors"]
    nodes = catalog["nodes"]
    recon = nodes["model.paysight.fct_reconciliation"]
    assert recon["metadata"]["schema"] == "marts"
    columns = {c.lower() for c in recon["columns"]}
    assert {"recon_key", "status", "age_days", "settled_amount_minor", "currency"} <= columns
    for model in ("fct_payments", "mrr_monthly", "fct_mrr_movements", "gst_summary_monthly"):
        assert f"model.paysight.{model}" in nodes, model
    manifest = json.loads((target / "manifest.json").read_text())
    described = manifest["nodes"]["model.paysight.fct_reconciliation"]["description"]
    assert described, "fct_reconciliation has no description in the docs"


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_docs_generates_then_serves_on_localhost_only():
    # -n prints the recipe without running it (no server is started).
    dry = subprocess.run(
        ["make", "-n", "docs", "DOCS_PORT=18099"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dry.returncode == 0, dry.stderr
    recipe = dry.stdout
    generate = recipe.index("dbt docs generate")
    serve = recipe.index("dbt docs serve")
    assert generate < serve
    assert "--host 127.0.0.1 --port 18099" in recipe
    assert "--no-browser" in recipe
    assert "get_settings().warehouse_path" in recipe  # the configured warehouse, not a default
