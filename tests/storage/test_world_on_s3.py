"""The same simulated world built with every location on the embedded stores and with the
landing zone, documents and MLflow artifacts on s3:// (a real S3 API server): every mart has
the same rows and the same money, and no local folder named `s3:` appears."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

WORLD = {"customers": 20, "months": 2, "seed": 2, "start": "2025-01-01"}


def _build(data_dir: Path, **locations: str) -> dict[str, tuple]:
    from tests.e2e.demo_world import build_and_materialize, embedded_settings

    settings = embedded_settings(data_dir, **locations)
    _, result, failed = build_and_materialize(settings, WORLD)
    assert result.success, failed
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        tables = con.execute(
            "select table_name from information_schema.tables where table_schema = 'marts'"
        ).fetchall()
        out = {}
        for (table,) in tables:
            cols = [
                c for (c,) in con.execute(
                    "select column_name from information_schema.columns "
                    "where table_schema = 'marts' and table_name = ? and column_name like '%_minor'",
                    [table],
                ).fetchall()
            ]  # fmt: skip
            sums = ", ".join(f"sum({c})" for c in cols)
            out[table] = con.execute(
                f"select count(*){', ' + sums if sums else ''} from marts.{table}"
            ).fetchone()
        out["raw.bank_settlements"] = con.execute(
            "select count(*), sum(gross_minor) from raw.bank_settlements"
        ).fetchone()
        return out
    finally:
        con.close()


@pytest.mark.slow
def test_the_world_on_s3_has_the_same_marts_as_on_local_disk(s3, tmp_path):
    local = _build(tmp_path / "local")
    remote = _build(
        tmp_path / "remote",
        landing_url="s3://paysight-test/landing",
        documents_url="s3://paysight-test/documents",
        mlflow_artifacts_dir="s3://paysight-test/mlartifacts",
    )
    assert local["raw.bank_settlements"][0] > 0
    assert remote == local
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="paysight-test").get("Contents", [])]
    assert any(k.startswith("landing/bank/") for k in keys), keys
    assert not [p for p in tmp_path.rglob("s3:*")]
