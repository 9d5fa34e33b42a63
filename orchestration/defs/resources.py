"""Resources for every area, built from settings (the only place that reads them)."""

from __future__ import annotations

import dagster as dg
from dagster_dbt import DbtCliResource

from orchestration.lib.dbt import dbt_executable, dbt_project
from orchestration.lib.env import Settings, get_settings
from orchestration.lib.resources import (
    GatewayResource,
    LandingResource,
    LedgerResource,
    MlflowResource,
    WarehouseResource,
)


def build_resources(settings: Settings | None = None) -> dict[str, object]:
    """Resources for `settings` (default: the process's settings)."""
    settings = settings or get_settings()
    return {
        "warehouse": WarehouseResource(
            path=str(settings.warehouse_path),
            spark_dir=str(settings.spark_dir) if settings.dbt_target == "spark" else "",
        ),
        "ledger": LedgerResource(url=str(settings.ledger_url)),
        "landing": LandingResource(url=str(settings.landing_url), spool=str(settings.landing_dir)),
        "mlflow": MlflowResource(
            tracking_uri=str(settings.mlflow_tracking_uri),
            artifacts_dir=str(settings.mlflow_artifacts_dir),
        ),
        "gateway": GatewayResource(
            gateways=settings.gateways,
            stripe_api_key=(
                settings.stripe_api_key.get_secret_value() if settings.stripe_api_key else None
            ),
            stripe_api_base=settings.stripe_api_base,
            razorpay_key_id=settings.razorpay_key_id,
            razorpay_key_secret=(
                settings.razorpay_key_secret.get_secret_value()
                if settings.razorpay_key_secret
                else None
            ),
            data_dir=str(settings.data_dir),
        ),
        "dbt": DbtCliResource(
            project_dir=dbt_project,
            target=settings.dbt_target,
            profiles_dir=str(dbt_project.profiles_dir),
            dbt_executable=dbt_executable(),
        ),
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=build_resources())
