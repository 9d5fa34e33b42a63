"""Upserting DataFrames into the warehouse by a composite key: replace, never duplicate, and refuse
bad batches before anything is written."""

import duckdb
import pandas as pd
import pytest

from ingestion.warehouse import table_count, upsert_dataframe


def _frame(rows):
    return pd.DataFrame(rows, columns=["gateway", "event_id", "status"])


def test_composite_key_upsert_replaces_by_every_key_column(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    keys = ["gateway", "event_id"]
    first = _frame([("stripe", "evt_1", "applied"), ("razorpay", "evt_1", "unmatched")])
    upsert_dataframe(con, "raw", "events", first, key=keys)
    upsert_dataframe(con, "raw", "events", first, key=keys)
    assert table_count(con, "raw", "events") == 2
    # same event id at another gateway is another row; same pair replaces
    upsert_dataframe(con, "raw", "events", _frame([("razorpay", "evt_1", "applied")]), key=keys)
    rows = con.execute("select gateway, event_id, status from raw.events order by 1").fetchall()
    assert rows == [("razorpay", "evt_1", "applied"), ("stripe", "evt_1", "applied")]


def test_bad_batches_are_refused_and_nothing_is_written(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    keys = ("gateway", "event_id")
    upsert_dataframe(con, "raw", "events", _frame([("stripe", "evt_1", "applied")]), key=keys)
    dupes = _frame([("stripe", "evt_2", "a"), ("stripe", "evt_2", "b"), ("x", "evt_2", "c")])
    with pytest.raises(ValueError, match=r"duplicate gateway, event_id values .*evt_2"):
        upsert_dataframe(con, "raw", "events", dupes, key=keys)
    with pytest.raises(ValueError, match=r"key columns \['nope'\] not in frame"):
        upsert_dataframe(con, "raw", "events", dupes, key=["gateway", "nope"])
    with pytest.raises(ValueError, match="safe SQL identifier"):
        upsert_dataframe(con, "raw", "events", dupes, key=["gateway", "event_id; drop"])
    with pytest.raises(ValueError, match="no key columns"):
        upsert_dataframe(con, "raw", "events", dupes, key=[])
    assert con.execute("select event_id from raw.events").fetchall() == [("evt_1",)]


def test_only_the_warehouse_module_opens_duckdb() -> None:
    """Every reader and writer of the warehouse (assets, CLI, reports, notebooks, benchmarks,
    the simulator) connects through ingestion.warehouse, so there is one place to change."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    allowed = root / "ingestion" / "warehouse.py"
    offenders = [
        f"{p.relative_to(root)}:{n}"
        for top in ("billing_jobs", "ingestion", "ml", "orchestration", "simulation", "benchmarks")
        for p in sorted((root / top).rglob("*.py"))
        if p != allowed
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if "duckdb.connect" in line
    ]
    assert offenders == [], offenders
