"""The dbt project and the one translator that decides keys and groups for every dbt node."""

from __future__ import annotations

import functools
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtProject

from orchestration.lib.paths import DBT_PROJECT_DIR


def dbt_executable() -> str:
    """The dbt next to this interpreter (the project's virtualenv), else dbt on PATH."""
    beside = Path(sys.executable).parent / "dbt"
    return str(beside) if beside.exists() else (shutil.which("dbt") or "dbt")


dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


class PaysightDbtTranslator(DagsterDbtTranslator):
    """Sources map to the raw ingestion assets (``raw_<table>``); models keep their names;
    groups follow the dbt folder (staging, intermediate, marts)."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey(f"{dbt_resource_props['source_name']}_{dbt_resource_props['name']}")
        return dg.AssetKey(dbt_resource_props["name"])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        fqn = dbt_resource_props.get("fqn", [])
        return fqn[1] if len(fqn) > 2 else "dbt"


translator = PaysightDbtTranslator(
    settings=DagsterDbtTranslatorSettings(
        enable_asset_checks=True, enable_source_tests_as_checks=True
    )
)


@functools.cache
def raw_contract() -> dict[str, dict[str, str]]:
    """The raw layer contract from the parsed manifest: table -> column -> declared type (the
    `raw` source of dbt_project/models/staging/_raw__sources.yml), in declaration order. Read
    once per process, as the dbt assets read the manifest once when the definitions load."""
    import json

    manifest = json.loads(Path(dbt_project.manifest_path).read_text())
    return {
        node["name"]: {c: (v.get("data_type") or "varchar") for c, v in node["columns"].items()}
        for node in manifest["sources"].values()
        if node["source_name"] == "raw"
    }
