"""ML training assets: revenue forecasts, churn, transaction anomaly and retry-timing models.
Each trains on the marts with a time-based holdout, logs to MLflow, registers a challenger
that becomes champion only if it beats the champion on the same holdout, and reports whether
it beats its simple baseline as an asset check."""

import dagster as dg
import mlflow as mlflow_lib
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from ml import churn_panel, plots, registry
from ml.anomaly import Detector, TransactionInputError, fit_detector
from ml.classify import TrainingInputError, time_split
from ml.forecast import ForecastInputError, fit_forecast, holdout_predictions
from ml.promotion import register_and_promote, register_unevaluated
from ml.pyfunc import ChurnPyfunc, DetectorPyfunc
from ml.retry import REGISTERED_NAME as RETRY_NAME
from ml.retry import fit_retry_model, prepare
from orchestration.defs.ml import checks
from orchestration.defs.ml.warehouse_io import (
    finite_metrics,
    md_image,
    md_table,
    read_sql,
    write_table,
)
from orchestration.lib.resources import MlflowResource, WarehouseResource

DAILY_REVENUE_SQL = """
select cast(created_at as date) as ds, sum(amount_minor - fee_minor - fee_tax_minor) as y
from marts.fct_payments
where status = 'succeeded' and currency = ?
group by 1 order by 1
"""
MRR_SQL = """
select month as ds, mrr_minor as y from marts.mrr_monthly
where currency = ? and active_customers > 0 order by 1
"""
ANOMALY_NAME = "transaction_anomaly"
DRIFT_REFERENCE_TABLE = "churn_training_reference"


class ForecastConfig(dg.Config):
    horizon_days: int = 28
    horizon_months: int = 3
    currency: str = "INR"
    # Backtested candidates; seasonal naive is always included as the baseline.
    candidates: list[str] = ["seasonal_naive", "ets", "theta", "prophet"]  # noqa: RUF012 (pydantic copies)


class TrainingConfig(dg.Config):
    """Share of the latest data held out (by time) to judge the model and its baselines."""

    holdout_fraction: float = 0.25
    seed: int = 0


def _daily_history(warehouse: WarehouseResource, currency: str) -> pd.DataFrame:
    history = read_sql(warehouse, DAILY_REVENUE_SQL, [currency])
    # Days without a successful payment are zero-revenue days, not missing ones.
    return (
        history.assign(ds=pd.to_datetime(history["ds"]))
        .set_index("ds")
        .asfreq("D", fill_value=0)
        .reset_index()
    )


def _forecast_series(
    name: str, history: pd.DataFrame, horizon: int, season: int | None, candidates: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float], bytes, str]:
    """Fit one series; returns forecast rows, backtest summary, metrics, plot and model."""
    result = fit_forecast(history, horizon=horizon, season=season, candidates=candidates)
    forecast = result.forecast.assign(series=name)
    summary = result.summary.assign(series=name, chosen=result.summary["candidate"] == result.model)
    seen = None
    try:
        holdout = int(result.metrics["holdout_periods"])
        seen = holdout_predictions(history, result.model, holdout, season=season)
    except ForecastInputError:
        pass  # too short to hold out a window; the backtest table still says it all
    png = plots.forecast_png(
        history, result.forecast, f"{name}: {result.model} (dashed: fit without them)", seen
    )
    metrics = {f"{name}_{k}": float(v) for k, v in result.metrics.items()}
    return forecast, summary, metrics, png, result.model


@dg.asset(
    group_name="ml",
    kinds={"python", "mlflow", "duckdb"},
    deps=[dg.AssetKey("fct_payments"), dg.AssetKey("mrr_monthly")],
    check_specs=[
        checks.spec(
            checks.FORECAST_CHECK,
            "revenue_forecast",
            "Each chosen forecaster's backtest MASE is no worse than seasonal naive's.",
        )
    ],
    description=(
        "Daily net revenue (28 days) and monthly MRR (3 months) forecasts, minor units with an "
        "80% interval, into ml.revenue_forecast (column series); backtests in "
        "ml.revenue_forecast_backtest."
    ),
)
def revenue_forecast(
    context: dg.AssetExecutionContext,
    config: ForecastConfig,
    warehouse: WarehouseResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    daily = _daily_history(warehouse, config.currency)
    mrr = read_sql(warehouse, MRR_SQL, [config.currency])
    outputs, summaries, metrics, images, models = [], [], {}, {}, {}
    # One BLAS/OpenMP thread: model fits here are small and oversubscription costs 10-25x.
    with threadpool_limits(1):
        for name, history, horizon, season in (
            ("daily_net_revenue", daily, config.horizon_days, None),
            # A year of months has no second season to learn from: compare with naive then.
            ("monthly_mrr", mrr, config.horizon_months, 12 if len(mrr) >= 30 else 1),
        ):
            try:
                fc, summary, m, png, model = _forecast_series(
                    name, history, horizon, season, config.candidates
                )
            except ForecastInputError as exc:
                context.log.warning(f"{name}: not forecast: {exc}")
                continue
            outputs.append(fc)
            summaries.append(summary)
            metrics.update(m)
            models[name] = model
            images[f"plot_{name}"] = md_image(png, f"{name} forecast against actuals")
    if not outputs:
        raise dg.Failure("no revenue series could be forecast; see the warnings above")
    forecast = pd.concat(outputs, ignore_index=True).assign(currency=config.currency)
    forecast = forecast[["series", "ds", "yhat", "yhat_lower", "yhat_upper", "model", "currency"]]
    summary = pd.concat(summaries, ignore_index=True)
    with mlflow.run(context, "revenue_forecast") as run:
        registry.log_params(
            {f"model_{k}": v for k, v in models.items()}
            | {"horizon_days": config.horizon_days, "horizon_months": config.horizon_months}
            | {"currency": config.currency}
        )
        registry.log_metrics(metrics)
        registry.log_table(summary, "backtest_summary.csv")
        registry.log_table(forecast.assign(ds=forecast["ds"].astype(str)), "forecast.csv")
        run_id = run.info.run_id
    write_table(warehouse, "revenue_forecast", forecast)
    write_table(warehouse, "revenue_forecast_backtest", summary)
    results = []
    for name in models:
        chosen, base = metrics[f"{name}_holdout_mase"], metrics[f"{name}_baseline_mase"]
        results.append((name, chosen, base))
    worst = max(results, key=lambda r: r[1] - r[2])
    check = checks.beats_baseline(
        checks.FORECAST_CHECK,
        "revenue_forecast",
        f"backtest MASE ({worst[0]})",
        worst[1],
        "seasonal_naive",
        worst[2],
        higher_is_better=False,
    )
    return dg.MaterializeResult(
        metadata={
            "mlflow_run_id": run_id,
            **{f"model_{k}": v for k, v in models.items()},
            **finite_metrics(metrics),
            "forecast_total_minor": int(
                forecast.loc[forecast["series"] == "daily_net_revenue", "yhat"].sum()
            ),
            "preview": md_table(forecast, 7),
            "backtest": md_table(summary, 20),
            **images,
        },
        check_results=[check],
    )


def _skipped(reason: str, names: list[str], asset: str) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata={"trained": False, "reason": reason},
        check_results=[checks.not_evaluated(n, asset, reason) for n in names],
    )


@dg.asset(
    group_name="ml",
    kinds={"python", "mlflow", "scikitlearn"},
    deps=[dg.AssetKey("customer_features_monthly")],
    check_specs=[
        checks.spec(
            checks.CHURN_CHECK,
            "churn_model",
            "Holdout ROC-AUC of the calibrated GBM is no worse than the recency-frequency "
            "heuristic's.",
        ),
        checks.spec(
            checks.CHURN_LOGREG_CHECK,
            "churn_model",
            "Holdout ROC-AUC of the calibrated GBM is no worse than logistic regression's.",
        ),
    ],
    description=(
        "Churn model (calibrated gradient boosting) trained on the monthly snapshot panel, "
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
    names = [checks.CHURN_CHECK, checks.CHURN_LOGREG_CHECK]
    try:
        with threadpool_limits(1):
            model = churn_panel.fit_panel(panel, config.holdout_fraction, config.seed)
    except TrainingInputError as exc:
        return _skipped(str(exc), names, "churn_model")
    rows = churn_panel.labelled(panel)
    holdout = churn_panel.holdout_rows(panel, config.holdout_fraction)
    png = plots.roc_pr_png(model.holdout_labels, model.holdout_scores, "churn holdout")
    card = registry.ModelCard(
        name=churn_panel.REGISTERED_NAME,
        model_type="CalibratedClassifierCV(HistGradientBoostingClassifier, isotonic)",
        parameters={**model.params, "holdout_fraction": config.holdout_fraction},
        metrics={
            k.removeprefix("hgb_calibrated_"): v
            for k, v in model.metrics.items()
            if k.startswith("hgb_calibrated_")
        },
        baseline_metrics={
            k.removeprefix("recency_frequency_"): v
            for k, v in model.metrics.items()
            if k.startswith("recency_frequency_")
        },
        data_window={
            "from": str(rows[churn_panel.TIME_COL].min()),
            "to": str(rows[churn_panel.TIME_COL].max()),
            "rows": str(len(rows)),
        },
        holdout_window={"rows": model.holdout, "size": str(len(holdout))},
        features=model.features,
        notes="Label: churned_in_horizon (cancel decision or dunning end within N days).",
    )

    def champion_auc(champion) -> float:
        from sklearn.metrics import roc_auc_score

        scores = np.asarray(champion.predict(holdout), dtype=float)
        return float(roc_auc_score(holdout[churn_panel.LABEL].astype(int), scores))

    with mlflow.run(context, "churn_model") as run:
        registry.log_params(card.parameters)
        registry.log_metrics(model.metrics)
        registry.log_model_card(card)
        registry.log_table(model.comparison, "comparison.csv")
        mlflow_lib.log_image(_png_array(png), "roc_pr.png")
        # No input example: integer columns with gaps would make a signature that rejects NULLs.
        uri = registry.log_pyfunc_model(ChurnPyfunc(model))
        version, decision = register_and_promote(
            uri,
            churn_panel.REGISTERED_NAME,
            "roc_auc",
            model.metrics["roc_auc"],
            True,
            model.holdout,
            champion_auc,
        )
        run_id = run.info.run_id
    if decision.promoted:
        # The drift sensor compares today's customers with what the champion learned from.
        latest = rows[rows[churn_panel.TIME_COL] == rows[churn_panel.TIME_COL].max()]
        write_table(warehouse, DRIFT_REFERENCE_TABLE, latest.assign(mlflow_run_id=run_id))
    m = model.metrics
    positives = int(model.holdout_labels.sum())
    counts = (positives, len(model.holdout_labels) - positives)
    return dg.MaterializeResult(
        metadata={
            "mlflow_run_id": run_id,
            "registered_version": version,
            "promoted": decision.promoted,
            "promotion_reason": decision.reason,
            **finite_metrics(m),
            "comparison": md_table(model.comparison),
            "roc_pr": md_image(png, "churn ROC and PR curves"),
            "model_card": dg.MetadataValue.md(card.to_markdown()),
        },
        check_results=[
            checks.beats_baseline(
                checks.CHURN_CHECK,
                "churn_model",
                "holdout ROC-AUC",
                m["roc_auc"],
                "recency_frequency",
                m.get("recency_frequency_roc_auc", float("nan")),
                class_counts=counts,
            ),
            checks.beats_baseline(
                checks.CHURN_LOGREG_CHECK,
                "churn_model",
                "holdout ROC-AUC",
                m["roc_auc"],
                "logistic_regression",
                m["logistic_regression_roc_auc"],
                severity=dg.AssetCheckSeverity.WARN,
                class_counts=counts,
            ),
        ],
    )


def _png_array(png: bytes) -> np.ndarray:
    import io

    import matplotlib.image as mpimg

    return mpimg.imread(io.BytesIO(png), format="png")


def detector_input(transactions: pd.DataFrame, with_labels: bool) -> pd.DataFrame:
    """The mart in the detector's documented schema (amounts stay integer minor units)."""
    frame = transactions.rename(
        columns={"amount_minor": "amount", "plan_amount_minor": "plan_amount"}
    )
    cols = ["transaction_id", "customer_id", "instrument_id", "amount", "created_at", "plan_amount"]
    out = frame[cols].copy()
    if with_labels:
        out["label"] = frame["fraud_disputed"].astype(int)
    return out


@dg.asset(
    group_name="ml",
    kinds={"python", "mlflow", "scikitlearn"},
    deps=[dg.AssetKey("ml_transactions")],
    check_specs=[
        checks.spec(
            checks.ANOMALY_CHECK,
            "transaction_anomaly_model",
            "On the later time window, the detector's PR-AUC against fraud disputes is no "
            "worse than the amount-vs-usual baseline's (warns when there are no labels).",
        )
    ],
    description=(
        "Transaction anomaly detector (robust z-scores on past-only features; a supervised "
        "model too when fraud disputes exist); registered as `transaction_anomaly`."
    ),
)
def transaction_anomaly_model(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    tx = read_sql(warehouse, "select * from marts.ml_transactions order by created_at")
    if tx.empty:
        return _skipped("no transactions", [checks.ANOMALY_CHECK], "transaction_anomaly_model")
    labelled = True
    with threadpool_limits(1):
        try:
            detector = fit_detector(detector_input(tx, with_labels=True))
        except TransactionInputError as exc:
            context.log.info(f"unsupervised only: {exc}")
            labelled = False
            detector = fit_detector(detector_input(tx, with_labels=False))
    window = f"created_at {tx['created_at'].min()} .. {tx['created_at'].max()}"
    metadata: dict[str, object] = {"labelled": labelled, "method": detector.method}
    with mlflow.run(context, "transaction_anomaly_model") as run:
        registry.log_params({"method": detector.method, "labelled": labelled, "rows": len(tx)})
        registry.log_metrics(detector.metrics)
        if not detector.evaluation.empty:
            registry.log_table(detector.evaluation.astype({"holdout_start": str}), "evaluation.csv")
        uri = registry.log_pyfunc_model(DetectorPyfunc(detector))
        if labelled:
            chosen = "supervised_hgb" if detector.method == "supervised" else "robust_z"
            value = detector.metrics[f"{chosen}_pr_auc"]
            version, decision = register_and_promote(
                uri,
                ANOMALY_NAME,
                "pr_auc",
                value,
                True,
                str(detector.evaluation["holdout_start"].iloc[0]),
                _champion_pr_auc(tx, detector),
            )
            promoted, reason = decision.promoted, decision.reason
        else:
            version, promoted, reason = register_unevaluated(uri, ANOMALY_NAME, window)
        run_id = run.info.run_id
    metadata |= {
        "mlflow_run_id": run_id,
        "registered_version": version,
        "promoted": promoted,
        "promotion_reason": reason,
        **finite_metrics(detector.metrics),
        "evaluation": md_table(detector.evaluation),
    }
    if not labelled:
        check = checks.not_evaluated(
            checks.ANOMALY_CHECK,
            "transaction_anomaly_model",
            "no fraud disputes to evaluate against; the detector scores unsupervised",
        )
    else:
        chosen = "supervised_hgb" if detector.method == "supervised" else "robust_z"
        check = checks.beats_baseline(
            checks.ANOMALY_CHECK,
            "transaction_anomaly_model",
            "later-window PR-AUC",
            detector.metrics[f"{chosen}_pr_auc"],
            "baseline_amount_ratio",
            detector.metrics["baseline_amount_ratio_pr_auc"],
            class_counts=(
                int(detector.evaluation["positives"].iloc[0]),
                int(detector.evaluation["rows"].iloc[0] - detector.evaluation["positives"].iloc[0]),
            ),
        )
    return dg.MaterializeResult(metadata=metadata, check_results=[check])


def _champion_pr_auc(tx: pd.DataFrame, detector: Detector):
    """Score the champion on the challenger's later window (features from all history)."""
    from sklearn.metrics import average_precision_score

    start = pd.Timestamp(detector.evaluation["holdout_start"].iloc[0])

    def score(champion) -> float:
        frame = detector_input(tx, with_labels=False)
        scores = champion.predict(frame)
        later = pd.to_datetime(tx["created_at"], utc=True) >= start
        ids = tx.loc[later.to_numpy(), "transaction_id"]
        labels = tx.loc[later.to_numpy(), "fraud_disputed"].astype(int)
        return float(average_precision_score(labels, scores.loc[ids].to_numpy()))

    return score


@dg.asset(
    group_name="ml",
    kinds={"python", "mlflow", "scikitlearn"},
    deps=[dg.AssetKey("retry_outcomes")],
    check_specs=[
        checks.spec(
            checks.RETRY_CHECK,
            "retry_timing_model",
            "Holdout ROC-AUC of the retry model is no worse than the per-decline-code rate's.",
        )
    ],
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
            model = fit_retry_model(
                outcomes, "failed_at", config.holdout_fraction, seed=config.seed
            )
    except TrainingInputError as exc:
        return _skipped(str(exc), [checks.RETRY_CHECK], "retry_timing_model")
    mask, _ = time_split(outcomes, "failed_at", config.holdout_fraction)
    holdout = outcomes[mask]
    labels = holdout["succeeded"].astype(int).to_numpy()
    png = plots.roc_pr_png(
        labels, {"hgb": model.pipeline.predict_proba(prepare(holdout))[:, 1]}, "retry holdout"
    )

    def champion_auc(champion) -> float:
        from sklearn.metrics import roc_auc_score

        probs = np.asarray(champion.predict(prepare(holdout)), dtype=float)
        return float(roc_auc_score(labels, probs[:, 1] if probs.ndim == 2 else probs))

    with mlflow.run(context, "retry_timing_model") as run:
        registry.log_params(model.params | {"holdout_fraction": config.holdout_fraction})
        registry.log_metrics(model.metrics)
        registry.log_table(model.comparison, "comparison.csv")
        mlflow_lib.log_image(_png_array(png), "roc_pr.png")
        uri = registry.log_sklearn_model(
            model.pipeline, input_example=prepare(outcomes).head(5), predict_fn="predict_proba"
        )
        version, decision = register_and_promote(
            uri,
            RETRY_NAME,
            "roc_auc",
            model.metrics["hgb_roc_auc"],
            True,
            model.holdout,
            champion_auc,
        )
        run_id = run.info.run_id
    m = model.metrics
    return dg.MaterializeResult(
        metadata={
            "mlflow_run_id": run_id,
            "registered_version": version,
            "promoted": decision.promoted,
            "promotion_reason": decision.reason,
            **finite_metrics(m),
            "comparison": md_table(model.comparison),
            "roc_pr": md_image(png, "retry ROC and PR curves"),
        },
        check_results=[
            checks.beats_baseline(
                checks.RETRY_CHECK,
                "retry_timing_model",
                "holdout ROC-AUC",
                m["hgb_roc_auc"],
                "decline_code_rate",
                m["decline_code_rate_roc_auc"],
                class_counts=(int(labels.sum()), int(len(labels) - labels.sum())),
            )
        ],
    )
