"""What analyst notebooks use to read the warehouse: a read-only DuckDB connection to the
warehouse the settings point at, queries as DataFrames, figures shown as PNG; and
`python -m orchestration.lib.notebook strip FILE...` to store notebooks without outputs."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pandas as pd

from ingestion import warehouse
from orchestration.lib.env import Settings, get_settings

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class WarehouseNotBuiltError(RuntimeError):
    """The configured warehouse file does not exist (or lacks the marts) yet."""


def warehouse_path(settings: Settings | None = None) -> Path:
    """The DuckDB file of the configured warehouse (`PAYSIGHT_WAREHOUSE_PATH` or data dir)."""
    settings = settings or get_settings()
    assert settings.warehouse_path is not None  # filled in by the settings' defaults
    return Path(settings.warehouse_path)


def connect(settings: Settings | None = None) -> duckdb.DuckDBPyConnection:
    """A read-only connection: a notebook can never change the warehouse it studies."""
    path = warehouse_path(settings)
    if not path.is_file():
        raise WarehouseNotBuiltError(
            f"no warehouse at {path} (PAYSIGHT_WAREHOUSE_PATH); build one with `paysight demo`"
        )
    settings = settings or get_settings()
    con = warehouse.connect(path, read_only=True, tables_dir=settings.spark_tables_dir)
    marts = con.execute(
        "select count(*) from information_schema.tables where table_schema = 'marts'"
    ).fetchone()
    if not marts or marts[0] == 0:
        con.close()
        raise WarehouseNotBuiltError(
            f"the warehouse at {path} has no marts; run `paysight demo` or the dbt build"
        )
    return con


def query(
    sql: str,
    params: Sequence[Any] | None = None,
    *,
    con: duckdb.DuckDBPyConnection | None = None,
) -> pd.DataFrame:
    """Run one query and return a DataFrame (a fresh read-only connection unless given one)."""
    own = con is None
    con = con or connect()
    try:
        return con.execute(sql, list(params or [])).df()
    finally:
        if own:
            con.close()


def as_of_date(con: duckdb.DuckDBPyConnection | None = None) -> date:
    """The day the marts describe (the dbt `as_of`), as recorded in `marts.ar_aging`."""
    frame = query("select max(as_of_date) as as_of_date from marts.ar_aging", con=con)
    value = frame.as_of_date.iloc[0]
    if pd.isna(value):
        raise WarehouseNotBuiltError("marts.ar_aging is empty: the marts have not been built")
    return pd.Timestamp(value).date()


def major_units(minor: pd.Series | int, exponent: int = 2) -> pd.Series | float:
    """Minor units as major-unit numbers for charts only (money stays integer in the data)."""
    return minor / 10**exponent


def show(fig: Figure) -> None:
    """Display a figure as a PNG and close it: works headless (Agg) and in Jupyter alike."""
    import matplotlib.pyplot as plt
    from IPython.display import Image, display

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    display(Image(data=buf.getvalue(), format="png"))


def strip_outputs(path: Path) -> bool:
    """Remove outputs and execution counts from a notebook file; True if it changed."""
    text = path.read_text(encoding="utf-8")
    doc = json.loads(text)
    for cell in doc.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    doc.get("metadata", {}).pop("widgets", None)
    # nbformat's own layout (indent 1, UTF-8 kept), so a stripped notebook diffs cleanly
    stripped = json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
    if stripped != text:
        path.write_text(stripped, encoding="utf-8")
    return stripped != text


if __name__ == "__main__":  # python -m orchestration.lib.notebook strip notebooks/*.ipynb
    if len(sys.argv) < 3 or sys.argv[1] != "strip":
        sys.exit("usage: python -m orchestration.lib.notebook strip NOTEBOOK.ipynb...")
    for name in sys.argv[2:]:
        print(f"{name}: {'stripped' if strip_outputs(Path(name)) else 'already clean'}")
