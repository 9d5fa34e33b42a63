"""The one place that knows where the project lives on disk."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT: Path = Path(__file__).resolve().parents[2]
DBT_PROJECT_DIR: Path = PROJECT_ROOT / "dbt_project"
