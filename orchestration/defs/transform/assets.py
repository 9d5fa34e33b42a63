"""dbt models as Dagster assets; dbt tests appear as asset checks."""

import json

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from orchestration.lib.dbt import dbt_project, translator
from orchestration.lib.resources import WarehouseResource


class DbtBuildConfig(dg.Config):
    """`as_of` (YYYY-MM-DD) is the day the marts describe (aging, SLAs); default: today."""

    as_of: str | None = None


@dbt_assets(manifest=dbt_project.manifest_path, dagster_dbt_translator=translator)
def paysight_dbt_models(
    context: dg.AssetExecutionContext,
    config: DbtBuildConfig,
    dbt: DbtCliResource,
    warehouse: WarehouseResource,
):
    args = ["build"]
    if config.as_of:
        args += ["--vars", json.dumps({"as_of": config.as_of})]
    with warehouse.dbt_env():
        yield from dbt.cli(args, context=context).stream()
