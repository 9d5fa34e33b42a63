"""ML training assets: revenue forecasts, churn, transaction anomaly and retry-timing models.
Each reads the marts, calls the tested trainer in ``ml/``, logs to MLflow, registers a
challenger that is promoted only if it beats its baseline and the champion on the same
holdout, and reports whether it beats its baseline as an asset check (an error when not)."""

import dagster as dg
from threadpoolctl import threadpool_limits

from ml.anomaly import registry as anomaly_registry
from ml.churn import panel as churn_panel
from ml.churn import registry as churn_registry
from ml.classify import TrainingInputError
from ml.forecast import DEFAULT_CANDIDATES, ForecastInputError, revenue
from ml.retry import fit_retry_model
from ml.retry import registry as retry_registry
from orchestration.defs.ml import checks
from orchestration.defs.ml.warehouse_io import (
    DRIFT_REFERENCE_TABLE,
    forecast_metadata,
    published_metadata,
    read_sql,
    write_table,
)
from orchestration.lib.resources import MlflowResource, WarehouseResource


class ForecastConfig(dg.Config):
    horizon_days: int = 28
    horizon_months: int = 3
    currency: str = "INR"
    # Backtested candidates; seasonal naive is always included as the baseline.
    candidates: list[str] = list(DEFAULT_CANDIDATES)  # noqa: RUF012 (pydantic copies)

    def horizons(self) -> tuple[int, int]:
        return self.horizon_days, self.horizon_months


class TrainingConfig(dg.Config):
    """Share of the latest data held out (by time) to judge the model and its baselines."""

    holdout_fraction: float = 0.25
    seed: int = 0


class AnomalyConfig(dg.Config):
    """A fraud dispute is known only this long after its payment; features and the
    training window never use a label before then."""

    label_delay_days: float = anomaly_registry.DEFAULT_LABEL_DELAY_DAYS


@dg.asset(
    group_name="ml",
    kinds={"python", "mlflow", "duckdb"},
    deps=[dg.AssetKey("fct_payments"), dg.AssetKey("mrr_monthly")],
    check_specs=[checks.spec_of(checks.FORECAST_CHECK)],
    description=(
        "Daily net revenue (28 days) and monthly MRR (3 months) forecasts, minor units with an "
        "80% interval calibrated on backtest errors, into ml.revenue_forecast (column series); "
        "backtests in ml.revenue_forecast_backtest."
    ),
)
def revenue_forecast(
    context: dg.AssetExecutionContext,
    config: ForecastConfig,
    warehouse: WarehouseResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    daily = revenue.daily_history(read_sql(warehouse, revenue.DAILY_REVENUE_SQL, [config.currency]))
    mrr = read_sql(warehouse, revenue.MRR_SQL, [config.currency])
    try:  # one BLAS/OpenMP thread: the fits are small and oversubscription costs 10-25x
        with threadpool_limits(1):
            result = revenue.fit_revenue(daily, mrr, *config.horizons(), config.candidates, config.currency)  # fmt: skip
    except ForecastInputError as exc:
        raise dg.Failure(str(exc)) from exc
    for name, reason in result.skipped.items():
        context.log.warning(f"{name}: not forecast: {reason}")
    with mlflow.run(context, "revenue_forecast") as run:
        revenue.log_revenue(result, config.model_dump(exclude={"candidates"}))
    write_table(warehouse, "revenue_forecast", result.forecast)
    write_table(warehouse, "revenue_forecast_backtest", result.summary)
    return dg.MaterializeResult(
        metadata=forecast_metadata(result, run.info.run_id),
        check_results=[checks.forecast_check(result)],
    )


@dg.asset(
    group_name="ml",
    kinds={"python", "mlflow", "scikitlearn"},
    deps=[dg.AssetKey("customer_features_monthly")],
    check_specs=[checks.spec_of(checks.CHURN_CHECK), checks.spec_of(checks.CHURN_LOGREG_CHECK)],
    description=(
        "Churn model (chosen by cross-validation between logistic regression, gradient "
        "boosting and their average; calibrated) trained on the monthly snapshot panel, "
        "judged on the latest snapshots; registered as `churn`."
    ),
)
def churn_model(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    warehouse: WarehouseResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    panel = read_sql(warehouse, "select * from marts.customer_features_monthly")
    try:
        with threadpool_limits(1):
            model = churn_panel.fit_panel(panel, config.holdout_fraction, config.seed)
    except TrainingInputError as exc:
        return checks.skipped(str(exc), [checks.CHURN_CHECK, checks.CHURN_LOGREG_CHECK])
    with mlflow.run(context, "churn_model") as run:
        published = churn_registry.publish(model, panel, config.holdout_fraction)
    if published.promoted:
        # The drift sensor compares today's customers with what the champion learned from.
        latest = churn_panel.latest_snapshot(panel).assign(mlflow_run_id=run.info.run_id)
        write_table(warehouse, DRIFT_REFERENCE_TABLE, latest)
    return dg.MaterializeResult(
        metadata=published_metadata(published, run.info.run_id, model.metrics, model.comparison),
        check_results=checks.churn_checks(model),
    )


@dg.asset(
    group_name="ml",
    kinds={"python", "mlflow", "scikitlearn"},
    deps=[dg.AssetKey("ml_transactions")],
    check_specs=[checks.spec_of(checks.ANOMALY_CHECK)],
    description=(
        "Transaction anomaly detector (supervised on fraud disputes known after the label "
        "delay, on a delay-respecting split; robust z-scores on past-only features when there "
        "are too few); registered as `transaction_anomaly`."
    ),
)
def transaction_anomaly_model(
    context: dg.AssetExecutionContext,
    config: AnomalyConfig,
    warehouse: WarehouseResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    tx = read_sql(warehouse, "select * from marts.ml_transactions order by created_at")
    if tx.empty:
        return checks.skipped("no transactions", [checks.ANOMALY_CHECK])
    with threadpool_limits(1):
        fitted = anomaly_registry.fit_transactions(tx, config.label_delay_days)
    if not fitted.labelled:
        context.log.info(f"unsupervised only: {fitted.reason}")
    with mlflow.run(context, "transaction_anomaly_model") as run:
        published = anomaly_registry.publish(fitted, tx)
    detector = fitted.detector
    metadata = published_metadata(published, run.info.run_id, detector.metrics, detector.evaluation)
    metadata |= {"labelled": fitted.labelled, "method": detector.method}
    return dg.MaterializeResult(metadata=metadata, check_results=[checks.anomaly_check(fitted)])


@dg.asset(
    group_name="ml",
    kinds={"python", "mlflow", "scikitlearn"},
    deps=[dg.AssetKey("retry_outcomes")],
    check_specs=[checks.spec_of(checks.RETRY_CHECK)],
    description=(
        "Retry timing: probability a retry `offset_hours` after a failure succeeds; "
        "registered as `retry_timing` for the smart retry policy."
    ),
)
def retry_timing_model(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    warehouse: WarehouseResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    outcomes = read_sql(warehouse, "select * from marts.retry_outcomes order by failed_at")
    try:
        with threadpool_limits(1):
            model = fit_retry_model(outcomes, "failed_at", config.holdout_fraction, config.seed)
    except TrainingInputError as exc:
        return checks.skipped(str(exc), [checks.RETRY_CHECK])
    with mlflow.run(context, "retry_timing_model") as run:
        published = retry_registry.publish(model, outcomes, config.holdout_fraction)
    holdout = retry_registry.holdout_frame(outcomes, config.holdout_fraction)
    return dg.MaterializeResult(
        metadata=published_metadata(published, run.info.run_id, model.metrics, model.comparison),
        check_results=[checks.retry_check(model, holdout)],
    )
