"""Jobs that span areas."""

import dagster as dg

platform_demo_job = dg.define_asset_job(
    "platform_demo_job",
    selection=dg.AssetSelection.all(),
    description="Materialize every asset: ingestion, dbt models and checks, ML.",
)
