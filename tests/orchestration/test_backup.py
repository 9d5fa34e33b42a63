"""`paysight backup` / `paysight restore` on real stores: a SQLite ledger (online backup API)
and a PostgreSQL one (pg_dump/pg_restore), a DuckDB warehouse, the MLflow SQLite store,
documents and secrets; corrupt, hostile and non-empty cases refused before anything is written."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from sqlalchemy import create_engine, func, select, text

from billing_jobs.ledger import schema as s
from billing_jobs.ledger.engine import make_engine, upgrade_ledger
from orchestration.backup import BackupError, backup, read_manifest, restore
from orchestration.lib.env import load_settings

T0 = datetime(2026, 4, 1, tzinfo=UTC)


def _settings(data: Path, **over):
    return load_settings(
        data_dir=data,
        ledger_url=over.pop("ledger_url", f"sqlite:///{data / 'ledger.sqlite'}"),
        warehouse_path=data / "warehouse.duckdb",
        landing_url=str(data / "landing"),
        documents_url=str(data / "invoices"),
        mlflow_tracking_uri=f"sqlite:///{data / 'mlflow.db'}",
        mlflow_artifacts_dir=data / "mlartifacts",
        **over,
    )


def _installation(data: Path, **over):
    """A small installation with something in every store."""
    settings = _settings(data, **over)
    engine = upgrade_ledger(make_engine(str(settings.ledger_url)))
    from billing_jobs.customers import create_customer

    create_customer(engine, name="Asha Rao", state_code="29", currency="INR", now=T0)
    engine.dispose()
    con = duckdb.connect(str(settings.warehouse_path))
    con.execute("create schema marts; create table marts.t as select range as n from range(1000)")
    con.execute("create view marts.v as select sum(n) as total from marts.t")
    con.close()
    import sqlite3

    ml = sqlite3.connect(data / "mlflow.db")
    ml.execute("create table runs (id text)")
    ml.execute("insert into runs values ('r1')")
    ml.commit()
    ml.close()
    (data / "invoices" / "2627").mkdir(parents=True)
    (data / "invoices" / "2627" / "INV-1.pdf").write_bytes(b"%PDF-1.7 fake but bytes")
    (data / "secrets").mkdir()
    secret = data / "secrets" / "simulated_webhook_secret"
    secret.write_text("s" * 32)
    secret.chmod(0o600)
    return settings


def _fingerprint(settings) -> dict:
    engine = make_engine(str(settings.ledger_url))
    with engine.connect() as conn:
        customers = conn.execute(select(s.customers.c.name)).scalars().all()
        revision = conn.execute(text("select version_num from alembic_version")).scalar_one()
    engine.dispose()
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    total = con.execute("select total from marts.v").fetchone()[0]
    con.close()
    docs = sorted(
        (str(p.relative_to(settings.documents_dir)), p.read_bytes())
        for p in settings.documents_dir.rglob("*")
        if p.is_file()
    )
    return {"customers": customers, "revision": revision, "total": total, "docs": docs}


def test_backup_then_restore_into_an_empty_installation_gives_the_same_data(tmp_path):
    original = _installation(tmp_path / "a")
    out = backup(original, tmp_path / "backups", at=T0)
    assert {e["name"] for e in out["stores"]} >= {"ledger", "warehouse", "mlflow", "documents"}
    restored = _settings(tmp_path / "b")
    assert restore(restored, Path(out["path"]))["restored"]
    assert _fingerprint(restored) == _fingerprint(original)
    secret = tmp_path / "b" / "secrets" / "simulated_webhook_secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600


def test_restore_refuses_a_store_that_already_holds_data_and_writes_nothing(tmp_path):
    original = _installation(tmp_path / "a")
    folder = Path(backup(original, tmp_path / "backups", at=T0)["path"])
    target = _settings(tmp_path / "b")
    (tmp_path / "b" / "invoices" / "mine.pdf").write_bytes(b"keep me")
    with pytest.raises(BackupError, match=r"documents: .* already holds data"):
        restore(target, folder)
    assert not (tmp_path / "b" / "ledger.sqlite").exists()
    assert not (tmp_path / "b" / "warehouse.duckdb").exists()
    assert (tmp_path / "b" / "invoices" / "mine.pdf").read_bytes() == b"keep me"


def test_a_corrupt_or_hostile_backup_is_refused_before_anything_is_written(tmp_path):
    original = _installation(tmp_path / "a")
    folder = Path(backup(original, tmp_path / "backups", at=T0)["path"])
    target = _settings(tmp_path / "b")
    doc = next((folder / "documents").rglob("*.pdf"))
    doc.write_bytes(b"tampered")
    with pytest.raises(BackupError, match=r"documents: .* does not match its checksum"):
        restore(target, folder)
    assert not (tmp_path / "b" / "ledger.sqlite").exists()

    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["stores"][0]["files"] = {"../../a/ledger.sqlite": {"sha256": "0", "mode": 420}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BackupError, match="points outside the backup"):
        read_manifest(folder)
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(BackupError, match="not valid JSON"):
        read_manifest(folder)
    with pytest.raises(BackupError, match="not a paysight backup"):
        read_manifest(tmp_path)


def test_the_same_instant_twice_and_stores_backup_cannot_copy_are_refused(tmp_path):
    original = _installation(tmp_path / "a")
    backup(original, tmp_path / "backups", at=T0)
    with pytest.raises(BackupError, match="already exists"):
        backup(original, tmp_path / "backups", at=T0)
    remote = _settings(tmp_path / "c").model_copy(update={"documents_url": "s3://bucket/docs"})
    with pytest.raises(BackupError, match="documents: s3://bucket/docs is an object store"):
        backup(remote, tmp_path / "backups2", at=T0)
    server = _settings(tmp_path / "d").model_copy(
        update={"mlflow_tracking_uri": "http://127.0.0.1:5000"}
    )
    with pytest.raises(BackupError, match=r"mlflow: .* not a local SQLite file"):
        backup(server, tmp_path / "backups3", at=T0)
    assert not (tmp_path / "backups2").exists() or not any((tmp_path / "backups2").iterdir())


def test_a_warehouse_held_by_a_writer_fails_the_backup_naming_it(tmp_path):
    import subprocess
    import sys
    import time

    original = _installation(tmp_path / "a")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb,sys,time; c=duckdb.connect(sys.argv[1]); print('held', flush=True); "
         "time.sleep(60)", str(original.warehouse_path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(BackupError, match=r"warehouse: cannot read .* consistently"):
            backup(original, tmp_path / "backups", at=T0)
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    assert not (tmp_path / "backups" / "paysight-backup-20260401T000000Z").exists()


@pytest.fixture
def pg_databases():
    url = os.environ.get("PAYSIGHT_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("PAYSIGHT_TEST_POSTGRES_URL is not set; PostgreSQL backup skipped")
    import uuid

    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    names = [f"bk_{uuid.uuid4().hex[:10]}_{i}" for i in (0, 1)]
    with admin.connect() as conn:
        for name in names:
            conn.execute(text(f'create database "{name}"'))
    base = url.rsplit("/", 1)[0]
    yield [f"{base}/{name}" for name in names]
    with admin.connect() as conn:
        for name in names:
            conn.execute(text(f'drop database if exists "{name}" with (force)'))
    admin.dispose()


def test_a_postgresql_ledger_goes_through_pg_dump_and_pg_restore(tmp_path, pg_databases):
    source_url, target_url = pg_databases
    original = _installation(tmp_path / "a", ledger_url=source_url)
    out = backup(original, tmp_path / "backups", at=T0)
    assert next(e for e in out["stores"] if e["name"] == "ledger")["kind"] == "postgres"
    restored = _settings(tmp_path / "b", ledger_url=target_url)
    restore(restored, Path(out["path"]))
    assert _fingerprint(restored) == _fingerprint(original)
    engine = make_engine(target_url)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(s.customers)).scalar_one() == 1
    engine.dispose()
    with pytest.raises(BackupError, match="ledger: the database already has tables"):
        restore(_settings(tmp_path / "c", ledger_url=target_url), Path(out["path"]))
