"""`paysight backup` and `paysight restore`: every store of one installation into one folder
and back.

A backup is a folder `paysight-backup-<UTC instant>/` holding one entry per store and a
`manifest.json` naming each entry, its kind and the SHA-256 of every file:

- the ledger: SQLite through the online backup API (consistent while billing runs), or
  PostgreSQL through `pg_dump --format=custom` (restored with `pg_restore`);
- the MLflow tracking store (SQLite, online backup API) and its artifacts folder;
- the warehouse (DuckDB): copied while a read-only connection holds DuckDB's file lock, so no
  writer can change it mid-copy (a running writer makes the backup fail, naming the file);
- folders: invoice and credit-note documents, landing files, secrets (mode kept), and, in a
  simulated installation, the simulated gateway's state and the simulation's ground truth.

Restore checks the whole manifest (every checksum, no path outside the backup) before it
writes anything, and writes only into empty targets: a store that already holds data is
refused, naming it, so a restore never merges into or overwrites a live installation.
Object-store URLs (s3://) and remote MLflow servers are refused with a message: their own
versioning and backups are the tool for those."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestration.lib.env import Settings

FORMAT = 1
MANIFEST = "manifest.json"


class BackupError(Exception):
    """A backup or restore that cannot go ahead; the message names the store and why."""


@dataclass(frozen=True)
class Store:
    """One thing to back up: `kind` is sqlite, postgres, duckdb or dir; `where` is a path or,
    for postgres, the SQLAlchemy URL."""

    name: str
    kind: str
    where: str
    optional: bool = False  # absent in this installation (nothing to back up) is fine


def stores(settings: Settings) -> list[Store]:
    """The stores of this installation, refusing any that backup cannot copy."""
    ledger = settings.ledger_url or ""
    if ledger.startswith("sqlite:///"):
        ledger_store = Store("ledger", "sqlite", ledger.removeprefix("sqlite:///"))
    elif ledger.startswith("postgresql"):
        ledger_store = Store("ledger", "postgres", ledger)
    else:
        raise BackupError(f"ledger: cannot back up {ledger.split(':', 1)[0]!r} URLs")
    mlflow = settings.mlflow_tracking_uri or ""
    if not mlflow.startswith("sqlite:///"):
        raise BackupError(
            f"mlflow: the tracking store {mlflow!r} is not a local SQLite file; back up the "
            "MLflow server's own store, or point MLFLOW_TRACKING_URI at a sqlite:/// file"
        )
    data = settings.data_dir
    out = [
        ledger_store,
        Store("warehouse", "duckdb", str(settings.warehouse_path)),
        Store("mlflow", "sqlite", mlflow.removeprefix("sqlite:///"), optional=True),
    ]
    for name, url in (
        ("mlartifacts", settings.mlflow_artifacts_dir),
        ("documents", settings.documents_url),
        ("landing", settings.landing_url),
    ):
        if "://" in (url or ""):
            raise BackupError(
                f"{name}: {url} is an object store; use the bucket's versioning or replication "
                "(paysight backup copies local folders)"
            )
        out.append(Store(name, "dir", str(url), optional=True))
    out += [
        Store("secrets", "dir", str(data / "secrets"), optional=True),
        Store("gateway", "sqlite", str(data / "gateway.sqlite"), optional=True),
        Store("sim_truth", "dir", str(data / "sim_truth"), optional=True),
    ]
    return out


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _pg_env(url: str) -> tuple[str, dict[str, str]]:
    """A libpq URL without the password (it goes in PGPASSWORD, not on a command line)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    plain = parsed.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _run(cmd: list[str], env: dict[str, str], what: str) -> None:
    if shutil.which(cmd[0]) is None:
        raise BackupError(f"{what}: {cmd[0]} is not installed (PostgreSQL client tools)")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackupError(f"{what}: {cmd[0]} failed: {done.stderr.strip()[-500:]}")


def _sqlite_copy(src: Path, dst: Path) -> None:
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
    target = sqlite3.connect(dst)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()


def _duckdb_copy(src: Path, dst: Path) -> None:
    from ingestion.warehouse import reading

    try:
        with reading(src):
            shutil.copy2(src, dst)
            wal = src.with_name(src.name + ".wal")
            if wal.exists():
                shutil.copy2(wal, dst.with_name(dst.name + ".wal"))
    except BackupError:
        raise
    except Exception as exc:  # duckdb.IOException: another process holds the write lock
        raise BackupError(f"warehouse: cannot read {src} consistently: {exc}") from None


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]


def backup(settings: Settings, into: Path, *, at: datetime) -> dict[str, Any]:
    """Back up every store under `into`/paysight-backup-<at>/; returns the manifest."""
    plan = stores(settings)
    folder = into / f"paysight-backup-{at.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    if folder.exists():
        raise BackupError(f"{folder} already exists")
    folder.mkdir(parents=True)
    entries: list[dict[str, Any]] = []
    try:
        for store in plan:
            entry = _backup_one(store, folder)
            if entry is not None:
                entries.append(entry)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    manifest = {
        "format": FORMAT,
        "created_at": at.astimezone(UTC).isoformat(),
        "stores": entries,
        "skipped": [s.name for s in plan if s.name not in {e["name"] for e in entries}],
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return {**manifest, "path": str(folder)}


def _backup_one(store: Store, folder: Path) -> dict[str, Any] | None:
    entry_path = folder / store.name
    if store.kind == "postgres":
        url, env = _pg_env(store.where)
        entry_path = folder / f"{store.name}.pgdump"
        _run(
            ["pg_dump", "--format=custom", "--no-owner", "-f", str(entry_path), url],
            env,
            store.name,
        )
    else:
        src = Path(store.where)
        if not src.exists():
            if store.optional:
                return None
            raise BackupError(f"{store.name}: {src} does not exist (nothing to back up)")
        if store.kind == "sqlite":
            _sqlite_copy(src, entry_path)
        elif store.kind == "duckdb":
            entry_path.mkdir()
            _duckdb_copy(src, entry_path / src.name)
        else:
            shutil.copytree(src, entry_path, symlinks=False)
    files = _files(entry_path)
    return {
        "name": store.name,
        "kind": store.kind,
        "entry": entry_path.name,
        "files": {
            str(p.relative_to(folder)): {"sha256": _sha256(p), "mode": p.stat().st_mode & 0o777}
            for p in files
        },
    }


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of the backup at `folder`, every file checked against its checksum."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        raise BackupError(f"{folder} is not a paysight backup (no {MANIFEST})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BackupError(f"{folder / MANIFEST} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{folder / MANIFEST}: unknown backup format (expected {FORMAT})")
    root = folder.resolve()
    for entry in manifest.get("stores", []):
        for rel, meta in entry.get("files", {}).items():
            path = (folder / rel).resolve()
            if not path.is_relative_to(root):
                raise BackupError(f"{MANIFEST}: {rel!r} points outside the backup")
            if not path.is_file():
                raise BackupError(f"{entry['name']}: {rel} is missing from the backup")
            if _sha256(path) != meta.get("sha256"):
                raise BackupError(f"{entry['name']}: {rel} does not match its checksum")
    return manifest


def restore(settings: Settings, folder: Path) -> dict[str, Any]:
    """Restore the backup at `folder` into this installation's (empty) stores."""
    manifest = read_manifest(folder)
    plan = {s.name: s for s in stores(settings)}
    entries = manifest["stores"]
    for entry in entries:
        store = plan.get(entry["name"])
        if store is None:
            raise BackupError(f"{entry['name']}: not a store of this paysight version")
        if store.kind != entry["kind"]:
            raise BackupError(
                f"{store.name}: the backup holds a {entry['kind']} store but this installation "
                f"is configured for {store.kind}"
            )
        _refuse_non_empty(store)
    for entry in entries:
        _restore_one(plan[entry["name"]], folder / entry["entry"], entry)
    return {"restored": [e["name"] for e in entries], "from": str(folder)}


def _refuse_non_empty(store: Store) -> None:
    if store.kind == "postgres":
        from sqlalchemy import create_engine, inspect

        engine = create_engine(store.where)
        try:
            tables = inspect(engine).get_table_names()
        finally:
            engine.dispose()
        if tables:
            raise BackupError(f"{store.name}: the database already has tables ({tables[0]}, ...)")
        return
    target = Path(store.where)
    if (target.is_dir() and any(target.iterdir())) or target.is_file():
        raise BackupError(f"{store.name}: {target} already holds data; restore into empty stores")


def _restore_one(store: Store, source: Path, entry: dict[str, Any]) -> None:
    if store.kind == "postgres":
        url, env = _pg_env(store.where)
        _run(
            ["pg_restore", "--no-owner", "--exit-on-error", "-d", url, str(source)], env, store.name
        )
        return
    target = Path(store.where)
    target.parent.mkdir(parents=True, exist_ok=True)
    if store.kind == "sqlite":
        shutil.copy2(source, target)
        os.chmod(target, next(iter(entry["files"].values()))["mode"])
    elif store.kind == "duckdb":
        for part in source.iterdir():  # the file and, after a crash, its write-ahead log
            wal = part.name.endswith(".wal")
            shutil.copy2(part, target.with_name(target.name + ".wal") if wal else target)
    else:
        shutil.copytree(source, target, dirs_exist_ok=True)
        for rel, meta in entry["files"].items():
            os.chmod(target / Path(rel).relative_to(entry["entry"]), meta["mode"])
