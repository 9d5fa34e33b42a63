"""What every `paysight` command needs before it works: the settings (a configuration error
exits 2 with the message) and the Dagster instance the UI reads (DAGSTER_HOME)."""

from __future__ import annotations

import os

import typer

from orchestration.lib.env import Settings, SettingsError, load_settings
from orchestration.lib.paths import PROJECT_ROOT


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        typer.secho(f"paysight: configuration error\n{exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from None


def ensure_dagster_home() -> str:
    """Runs made by the CLI land in the same instance the UI reads (DAGSTER_HOME)."""
    home = os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT / ".dagster"))
    os.makedirs(home, exist_ok=True)
    return home
