"""ML assets: models trained on the marts, tracked in MLflow, written to the ``ml`` schema."""

import dagster as dg
import pandas as pd

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
    from threadpoolctl import threadpool_limits

    with warehouse.connect() as con:
        history = con.execute(DAILY_REVENUE_SQL, [config.currency]).df()
    # Days without a successful payment are zero-revenue days, not missing ones.
    history = (
        history.assign(ds=pd.to_datetime(history["ds"]))
        .set_index("ds")
        .asfreq("D", fill_value=0)
        .reset_index()
    )
    # One BLAS/OpenMP thread: model fits here are small and oversubscription costs 10-25x.
    with threadpool_limits(1):
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
        mlflow_lib.log_metrics({k: float(v) for k, v in result.metrics.items()})
        if not result.summary.empty:
            mlflow_lib.log_table(result.summary, "backtest_summary.json")
        if not result.backtest.empty:
            mlflow_lib.log_table(
                result.backtest.assign(cutoff=result.backtest["cutoff"].astype(str))
                if "cutoff" in result.backtest
                else result.backtest,
                "backtest.json",
            )
        mlflow_lib.log_table(forecast.assign(ds=forecast["ds"].astype(str)), "forecast.json")
        run_id = run.info.run_id
    with warehouse.connect() as con:
        con.execute("create schema if not exists ml")
        con.register("_forecast", forecast)
        con.execute("create or replace table ml.revenue_forecast as select * from _forecast")
        summary = result.summary.assign(chosen=result.summary.get("candidate") == result.model)
        con.register("_summary", summary)
        con.execute(
            "create or replace table ml.revenue_forecast_backtest as select * from _summary"
        )
    return dg.MaterializeResult(
        metadata={
            "mlflow_run_id": run_id,
            "model": result.model,
            **{k: float(v) for k, v in result.metrics.items()},
            "forecast_total_minor": int(forecast["yhat"].sum()),
            "preview": dg.MetadataValue.md(forecast.head(7).to_markdown(index=False)),
            "backtest": dg.MetadataValue.md(
                result.summary.to_markdown(index=False) if not result.summary.empty else "n/a"
            ),
        }
    )
