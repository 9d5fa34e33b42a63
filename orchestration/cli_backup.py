"""`paysight backup` and `paysight restore`: every store of the installation into one folder
(ledger, warehouse, MLflow, documents, landing files, secrets) and back into empty stores;
`paysight scan-pii`: no card number, CVV, UPI PIN or API key in any store, log or file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from orchestration.cli_billing import JsonOption
from orchestration.cli_output import emit


def _fail(exc: Exception) -> None:
    typer.secho(f"paysight: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


def backup_command(
    to: Annotated[
        Path,
        typer.Option("--to", file_okay=False, help="Folder the backup folder is created in."),
    ] = Path("backups"),
    as_json: JsonOption = False,
) -> None:
    """Back up every store into <--to>/paysight-backup-<UTC instant>/ with a checksummed
    manifest (SQLite through its online backup API, PostgreSQL through pg_dump)."""
    from orchestration.backup import BackupError, backup
    from orchestration.cli_context import settings_or_exit

    settings = settings_or_exit()
    try:
        out = backup(settings, to, at=datetime.now(UTC))
    except BackupError as exc:
        _fail(exc)
    emit(out, as_json, render=_render_backup)


def _render_backup(out: dict[str, Any]) -> None:
    typer.secho(f"backup written to {out['path']}", bold=True)
    for entry in out["stores"]:
        typer.echo(f"  {entry['name']:12} {entry['kind']:9} {len(entry['files'])} file(s)")
    if out["skipped"]:
        typer.echo(f"  not present here: {', '.join(out['skipped'])}")


def restore_command(
    backup_dir: Annotated[
        Path, typer.Argument(exists=True, file_okay=False, help="A paysight-backup-* folder.")
    ],
    as_json: JsonOption = False,
) -> None:
    """Restore a backup into this installation's stores, which must be empty. Every checksum
    is verified before anything is written."""
    from orchestration.backup import BackupError, restore
    from orchestration.cli_context import settings_or_exit

    settings = settings_or_exit()
    try:
        out = restore(settings, backup_dir)
    except BackupError as exc:
        _fail(exc)
    emit(out, as_json, render=lambda o: typer.echo(f"restored {', '.join(o['restored'])}"))


def scan_pii_command(
    also: Annotated[
        list[Path] | None,
        typer.Option("--also", exists=True, help="Another folder or file to scan (e.g. logs)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Scan every store, log and landing file for card numbers (Luhn and network checked),
    CVVs, UPI PINs and gateway API keys. Reports where, never the value; exit 1 on a find or
    on a store it could not read (a warehouse another process is writing)."""
    from orchestration.cli_context import settings_or_exit
    from orchestration.pii_scan import scan

    out = scan(settings_or_exit(), also or [])
    emit(out, as_json, render=_render_scan)
    if out["findings"] or out["unreadable"]:
        raise typer.Exit(code=1)


def _render_scan(out: dict[str, Any]) -> None:
    typer.echo(f"{out['files_scanned']} files scanned, {len(out['findings'])} finding(s)")
    for f in out["findings"]:
        where = "row" if "::" in f["path"] else "byte"
        typer.echo(f"  {f['kind']:12} {f['path']} at {where} {f['offset']} ({f['hint']})")
    for u in out["unreadable"]:
        typer.echo(f"  unreadable   {u['path']}: {u['reason']}")


def register(app: typer.Typer) -> None:
    app.command("scan-pii")(scan_pii_command)
    app.command("backup")(backup_command)
    app.command("restore")(restore_command)
