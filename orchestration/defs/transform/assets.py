"""dbt models as Dagster assets; dbt tests appear as asset checks."""

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from orchestration.lib.dbt import dbt_project, translator
from orchestration.lib.resources import WarehouseResource


@dbt_assets(manifest=dbt_project.manifest_path, dagster_dbt_translator=translator)
def paysight_dbt_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
):
    with warehouse.dbt_env():
        yield from dbt.cli(["build"], context=context).stream()
