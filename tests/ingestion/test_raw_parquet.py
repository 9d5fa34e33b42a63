"""The raw hand-over to another engine (ingestion/raw_parquet.py) and the one warehouse reader
over Spark's tables (ingestion/warehouse.py `connect(..., tables_dir=...)`), on real DuckDB
files and Parquet files; Spark itself runs in tests/e2e/test_spark_target.py."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ingestion.raw_parquet import PART, publish
from ingestion.warehouse import connect

CONTRACT = {
    "ledger_plans": {
        "id": "bigint",
        "interval_count": "integer",
        "voided_at": "timestamp",
        "name": "varchar",
    },
}


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    con = connect(path)
    con.execute("create schema raw")
    # Types as pandas frames leave them: int64 for an integer column, text for an all-null one,
    # an extra column the contract does not declare, a declared column missing.
    con.execute(
        "create table raw.ledger_plans as select * from (values "
        "(1::bigint, 3::bigint, null::varchar, 'x'), (2, 1, null, 'y')) t(id, interval_count, "
        "voided_at, extra)"
    )
    con.close()
    return path


def test_a_raw_table_is_published_with_exactly_the_contract_columns_and_types(warehouse, tmp_path):
    con = connect(warehouse)
    try:
        assert publish(con, tmp_path / "raw", CONTRACT, ["ledger_plans", "not_declared"]) == [
            "ledger_plans"
        ]
    finally:
        con.close()
    part = tmp_path / "raw" / "ledger_plans" / PART
    schema = pq.read_schema(part)
    assert schema.names == ["id", "interval_count", "voided_at", "name"]
    assert [str(t) for t in schema.types] == ["int64", "int32", "timestamp[us]", "string"]
    table = pq.read_table(part).to_pylist()
    assert table == [
        {"id": 1, "interval_count": 3, "voided_at": None, "name": None},
        {"id": 2, "interval_count": 1, "voided_at": None, "name": None},
    ]
    assert [p.name for p in part.parent.iterdir()] == [PART]  # no temporary file left


def test_a_failed_publish_keeps_the_previous_file(warehouse, tmp_path):
    con = connect(warehouse)
    try:
        publish(con, tmp_path / "raw", CONTRACT, ["ledger_plans"])
        before = (tmp_path / "raw" / "ledger_plans" / PART).read_bytes()
        con.execute("insert into raw.ledger_plans values (3, 1, 'not a time', 'z')")
        with pytest.raises(Exception, match="not a time"):
            publish(con, tmp_path / "raw", CONTRACT, ["ledger_plans"])
    finally:
        con.close()
    folder = tmp_path / "raw" / "ledger_plans"
    assert (folder / PART).read_bytes() == before
    assert [p.name for p in folder.iterdir()] == [PART]


@pytest.mark.parametrize(
    ("contract", "message"),
    [
        ({"ledger_plans": {"id": "bigint); drop table raw.ledger_plans; --"}}, "unsupported"),
        ({"ledger_plans": {'id" from raw.x; --': "bigint"}}, "not a safe SQL identifier"),
    ],
)
def test_a_hostile_contract_is_refused_and_changes_nothing(warehouse, tmp_path, contract, message):
    con = connect(warehouse)
    try:
        with pytest.raises(ValueError, match=message):
            publish(con, tmp_path / "raw", contract, ["ledger_plans"])
        assert con.execute("select count(*) from raw.ledger_plans").fetchone()[0] == 2
    finally:
        con.close()
    assert not (tmp_path / "raw" / "ledger_plans" / PART).exists()


def _spark_table(root: Path, schema: str, table: str, sql: str) -> None:
    folder = root / f"{schema}.db" / table
    folder.mkdir(parents=True)
    con = connect()
    con.execute(f"copy ({sql}) to '{folder / 'part-00000.snappy.parquet'}' (format parquet)")
    con.close()
    (folder / "_SUCCESS").write_text("")


def test_the_reader_shows_spark_tables_over_the_file_under_the_same_names(warehouse, tmp_path):
    con = connect(warehouse)
    con.execute("create schema marts")
    con.execute("create table marts.mrr_monthly as select 1 as stale")
    con.execute("create schema ml")
    con.execute("create table ml.churn_scores as select 7 as customer_id")
    con.close()
    lake = tmp_path / "spark" / "warehouse"
    _spark_table(lake, "marts", "mrr_monthly", "select 500::bigint as mrr_minor, 'INR' as currency")
    _spark_table(lake, "staging", "stg_x", "select 1 as id")
    (lake / "marts.db" / "empty_dir").mkdir()  # no Parquet yet: not shown

    reader = connect(warehouse, read_only=True, tables_dir=lake)
    try:
        assert reader.execute("select * from marts.mrr_monthly").fetchall() == [(500, "INR")]
        assert reader.execute("select customer_id from ml.churn_scores").fetchall() == [(7,)]
        assert reader.execute("select count(*) from raw.ledger_plans").fetchone() == (2,)
        assert reader.execute("select id from staging.stg_x").fetchall() == [(1,)]
        tables = reader.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_catalog = 'memory' order by 1, 2"
        ).fetchall()
        assert ("marts", "empty_dir") not in tables and ("marts", "mrr_monthly") in tables
        with pytest.raises(Exception, match=r"read-only|read only"):
            reader.execute("insert into warehouse.ml.churn_scores values (8)")
        reader.execute("create table ml.scratch as select 1")  # in memory, gone on close
    finally:
        reader.close()
    # The file itself is unchanged and still opens for writing afterwards.
    con = connect(warehouse)
    assert con.execute("select * from marts.mrr_monthly").fetchall() == [(1,)]
    assert con.execute("select count(*) from ml.churn_scores").fetchone() == (1,)
    con.close()


def test_the_spark_reader_is_read_only(warehouse, tmp_path):
    with pytest.raises(ValueError, match="read_only=True"):
        connect(warehouse, tables_dir=tmp_path)
