"""The notebooks' warehouse helper: the configured warehouse, read-only, clear errors."""

from __future__ import annotations

from datetime import date

import duckdb
import pytest

from orchestration.lib import notebook as nb


@pytest.fixture
def warehouse(paysight_env, monkeypatch):
    from orchestration.lib.env import get_settings

    path = paysight_env / "wh.duckdb"
    paysight_env.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("PAYSIGHT_WAREHOUSE_PATH", str(path))
    get_settings.cache_clear()
    return path


def build(path, as_of="2025-06-30"):
    con = duckdb.connect(str(path))
    con.execute("create schema marts")
    con.execute(f"create table marts.ar_aging as select date '{as_of}' as as_of_date, 'INR' c")
    con.execute("create table marts.t as select 1 as amount_minor")
    con.close()


def test_connects_read_only_to_the_configured_warehouse(warehouse):
    build(warehouse)
    assert nb.warehouse_path() == warehouse
    con = nb.connect()
    try:
        assert con.execute("select amount_minor from marts.t").fetchall() == [(1,)]
        with pytest.raises(duckdb.Error, match="read-only"):
            con.execute("insert into marts.t values (2)")
    finally:
        con.close()
    assert nb.query("select ? + amount_minor as x from marts.t", [41]).x.tolist() == [42]
    assert nb.as_of_date() == date(2025, 6, 30)


def test_a_missing_warehouse_names_the_path_and_the_fix(warehouse):
    with pytest.raises(nb.WarehouseNotBuiltError, match=r"wh\.duckdb.*paysight demo"):
        nb.connect()
    assert not warehouse.exists()  # read-only: nothing was created


def test_a_warehouse_without_marts_is_refused(warehouse):
    duckdb.connect(str(warehouse)).close()
    with pytest.raises(nb.WarehouseNotBuiltError, match="no marts"):
        nb.connect()


def test_show_renders_a_png_and_closes_the_figure(monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    nb.show(fig)
    assert len(shown) == 1 and shown[0].data[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.get_fignums()


def test_strip_outputs_restores_the_stored_form(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    stored = Path(nb.__file__).resolve().parents[2] / "notebooks" / "revenue_overview.ipynb"
    copy = tmp_path / "n.ipynb"
    doc = json.loads(stored.read_text(encoding="utf-8"))
    code = next(c for c in doc["cells"] if c["cell_type"] == "code")
    code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["₹1,00,000\n"]}]
    code["execution_count"] = 7
    copy.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    assert nb.strip_outputs(copy) is True
    assert copy.read_text(encoding="utf-8") == stored.read_text(encoding="utf-8")
    assert nb.strip_outputs(copy) is False
    cli = subprocess.run(
        [sys.executable, "-m", "orchestration.lib.notebook", "strip", str(copy)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0 and "already clean" in cli.stdout
