"""The analyst notebooks: stored without outputs, and each runs top to bottom on a demo world
through the warehouse helper (read-only), drawing its charts headless (Agg)."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO_ROOT / "notebooks"
EXPECTED = ("payment_performance", "reconciliation_review", "revenue_overview")


def stored(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def test_the_three_notebooks_exist_and_are_valid():
    assert tuple(sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))) == EXPECTED
    for name in EXPECTED:
        nbformat.validate(stored(name))
        assert stored(name).metadata.kernelspec.name == "python3"


@pytest.mark.parametrize("name", EXPECTED)
def test_notebooks_are_stored_with_outputs_stripped(name):
    raw = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text(encoding="utf-8"))
    for cell in raw["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [], f"{name}: a code cell has stored outputs"
            assert cell["execution_count"] is None, f"{name}: a code cell has an execution count"
    assert "widgets" not in raw["metadata"]


@pytest.mark.parametrize("name", EXPECTED)
def test_notebooks_read_the_warehouse_only_through_the_helper(name):
    code = "\n".join(c.source for c in stored(name).cells if c.cell_type == "code")
    assert "from orchestration.lib import notebook as nb" in code
    assert "nb.connect()" in code
    assert "duckdb.connect" not in code and "import duckdb" not in code


def outputs(nb: nbformat.NotebookNode) -> tuple[str, int]:
    """All text the notebook printed or displayed, and how many PNG figures it showed."""
    text, pngs = [], 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                text.append(out.text)
            data = out.get("data", {})
            text.append(data.get("text/plain", ""))
            pngs += "image/png" in data
    return "\n".join(text), pngs


# What each notebook must show on the demo world (text in its outputs, minimum figures).
MUST_SHOW = {
    "revenue_overview": (["complete months: 4", "expansion", "churn", "NRR"], 3),
    "reconciliation_review": (
        ["duplicate", "missing_in_ledger", "amount_mismatch", "unsettled_overdue", "bank"],
        1,
    ),
    "payment_performance": (["success rate", "upi", "insufficient_funds", "recovered"], 3),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_runs_top_to_bottom_on_the_demo_world(name, demo_world, monkeypatch, tmp_path):
    assert demo_world.success, "the demo world did not build"
    for key, value in demo_world.env().items():
        monkeypatch.setenv(key, value)  # the kernel inherits the environment: the settings
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mpl"))
    nb = stored(name)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    text, pngs = outputs(nb)
    assert str(demo_world.warehouse_path) in text
    words, figures = MUST_SHOW[name]
    missing = [w for w in words if w not in text]
    assert not missing, f"{name} did not show {missing}"
    assert pngs >= figures
