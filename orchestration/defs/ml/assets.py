"""ML assets: models trained on the marts, tracked in MLflow, written to the ``ml`` schema."""

import dagster as dg

from ml.forecast import fit_forecast
from orchestration.lib.resources import MlflowResource, WarehouseResource

DAILY_REVENUE_SQL = """
select cast(created_at as date) as ds, sum(amount_minor - fee_minor - fee_tax_minor) as y
from marts.fct_payments
where status = 'succeeded' and currency = ?
group by 1 order by 1
"""


class ForecastConfig(dg.Config):
    horizon_days: int = 28
    currency: str = "INR"


@dg.asset(
    group_name="ml",
    kinds={"python", "mlflow", "duckdb"},
    deps=[dg.AssetKey("fct_payments")],
    description="Daily net revenue forecast (minor units) with an 80% interval (ml.revenue_forecast).",
)
def revenue_forecast(
    context: dg.AssetExecutionContext,
    config: ForecastConfig,
    warehouse: WarehouseResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    import mlflow as mlflow_lib

    with warehouse.connect() as con:
        history = con.execute(DAILY_REVENUE_SQL, [config.currency]).df()
    result = fit_forecast(history, horizon=config.horizon_days)
    forecast = result.forecast.assign(currency=config.currency)
    with mlflow.run(context, "revenue_forecast") as run:
        mlflow_lib.log_params(
            {
                "model": result.model,
                "horizon_days": config.horizon_days,
                "currency": config.currency,
            }
        )
        mlflow_lib.log_metrics(result.metrics)
        mlflow_lib.log_table(forecast.assign(ds=forecast["ds"].astype(str)), "forecast.json")
        run_id = run.info.run_id
    with warehouse.connect() as con:
        con.execute("create schema if not exists ml")
        con.register("_forecast", forecast)
        con.execute("create or replace table ml.revenue_forecast as select * from _forecast")
    return dg.MaterializeResult(
        metadata={
            "mlflow_run_id": run_id,
            "model": result.model,
            **{k: float(v) for k, v in result.metrics.items()},
            "forecast_total_minor": int(forecast["yhat"].sum()),
            "preview": dg.MetadataValue.md(forecast.head(7).to_markdown(index=False)),
        }
    )
