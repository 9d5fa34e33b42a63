"""The marts on Spark: one small world built on the DuckDB target and again on the spark target
(dbt-spark on a real local Spark session), through the platform's own assets. The ingestion
assets hand the raw tables to Spark as Parquet; the warehouse reader shows Spark's tables under
the same names; every mart must hold the same rows on both engines."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from tests.e2e.demo_world import build_and_materialize, embedded_settings, materialize_as_of

pytest.importorskip("pyspark", reason="the spark extra (pyspark, dbt-spark) is not installed")
if shutil.which("java") is None:
    pytest.skip("no Java runtime for Spark (apt-get install -y openjdk-17-jre-headless)",
                allow_module_level=True)  # fmt: skip

pytestmark = pytest.mark.slow

WORLD = {"customers": 20, "months": 2, "seed": 2, "start": "2025-01-01"}


def _plain(value: object) -> object:
    """Numbers compared to 6 places: the engines type ratios differently (DuckDB doubles,
    Spark decimals); integers and money compare exactly."""
    if isinstance(value, float | Decimal):
        return round(float(value), 6)
    return value


def _contents(con, table: str) -> tuple[list[str], list[tuple]]:
    cur = con.execute(f"select * from marts.{table}")
    cols = [d[0] for d in cur.description]
    rows = sorted((tuple(_plain(v) for v in row) for row in cur.fetchall()), key=repr)
    return cols, rows


def _minor_sums(con, table: str, cols: list[str]) -> list[tuple]:
    """Each *_minor sum per currency and month (of the mart's first date column)."""
    minor = [c for c in cols if c.endswith("_minor")]
    if not minor:
        return []
    types = dict(con.execute(f"select column_name, column_type from (describe marts.{table})")
                 .fetchall())  # fmt: skip
    dated = [c for c in cols if types[c] in ("DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE")]
    keys = (["currency"] if "currency" in cols else []) + (
        [f"date_trunc('month', {dated[0]})"] if dated else []
    )
    sums = ", ".join(f"cast(sum({c}) as bigint)" for c in minor)
    group = f" group by {', '.join(keys)} order by {', '.join(keys)}" if keys else ""
    select = ", ".join([*keys, sums])
    return con.execute(f"select {select} from marts.{table}{group}").fetchall()


@pytest.fixture(scope="module")
def both_targets(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("spark_world") / "data"
    duck = embedded_settings(data)
    built, result, failed = build_and_materialize(duck, WORLD)
    assert result.success and failed == []
    # The same world again, on Spark: the ingestion assets re-run (nothing new to copy) and
    # publish the raw tables as Parquet; dbt builds and tests every model on Spark.
    spark = embedded_settings(data, dbt_target="spark", spark_dir=data / "spark")
    result, failed = materialize_as_of(spark, built.end)
    assert result.success, [e.step_key for e in result.all_events if e.is_failure]
    assert failed == []
    return duck, spark


def test_every_mart_is_the_same_on_duckdb_and_spark(both_targets):
    from ingestion.warehouse import connect, spark_tables

    duck, spark = both_targets
    assert spark.spark_tables_dir is not None
    on_spark = {t for s, t in spark_tables(spark.spark_tables_dir) if s == "marts"}
    a = connect(duck.warehouse_path, read_only=True)
    b = connect(spark.warehouse_path, read_only=True, tables_dir=spark.spark_tables_dir)
    try:
        marts = [r[0] for r in a.execute(
            "select table_name from information_schema.tables where table_schema = 'marts'"
        ).fetchall()]  # fmt: skip
        assert len(marts) > 15 and set(marts) <= on_spark
        differ = {}
        for table in sorted(marts):
            cols, rows = _contents(a, table)
            spark_cols, spark_rows = _contents(b, table)
            assert spark_cols == cols, table
            if len(rows) != len(spark_rows) or _minor_sums(a, table, cols) != _minor_sums(
                b, table, cols
            ):
                differ[table] = (len(rows), len(spark_rows))
            elif rows != spark_rows:
                differ[table] = "same counts and sums, different rows"
        assert differ == {}
        # Not a world of empty tables: the payments mart holds every attempt.
        assert a.execute("select count(*) from marts.fct_payments").fetchone()[0] > 20
    finally:
        a.close()
        b.close()


def test_the_raw_tables_reach_spark_as_parquet_files_with_the_contract_columns(both_targets):
    import pyarrow.parquet as pq

    from ingestion.warehouse import connect
    from orchestration.lib.dbt import raw_contract

    _, spark = both_targets
    contract = raw_contract()
    con = connect(spark.warehouse_path, read_only=True)
    try:
        in_duckdb = {r[0]: r[1] for r in con.execute(
            "select table_name, estimated_size from duckdb_tables() where schema_name = 'raw'"
        ).fetchall() if r[0] in contract}  # fmt: skip
        counts = {t: con.execute(f"select count(*) from raw.{t}").fetchone()[0] for t in in_duckdb}
    finally:
        con.close()
    published = {p.parent.name: p for p in (spark.spark_dir / "raw").glob("*/part-0.parquet")}
    # Every raw table the ingestion assets wrote, and nothing else, with every row.
    assert set(published) == set(in_duckdb)
    assert {"gateway_charges", "ledger_invoices", "bank_settlements"} <= set(published)
    for table, part in published.items():
        assert pq.read_schema(part).names == list(contract[table]), table
        assert pq.read_metadata(part).num_rows == counts[table], table
    # No half-written file is left beside them.
    assert not list((spark.spark_dir / "raw").glob("*/.*"))


def test_the_cli_reports_read_the_spark_marts(both_targets):
    from orchestration.reports import mrr_report

    duck, spark = both_targets
    on_duckdb = mrr_report(Path(duck.warehouse_path), 12)
    on_spark = mrr_report(Path(spark.warehouse_path), 12, spark.spark_tables_dir)
    assert on_spark == on_duckdb and on_spark["months"]
