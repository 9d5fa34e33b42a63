"""ML scoring assets: the champions score the current marts (churn risk per customer, anomaly
score per transaction, daily revenue and failure-rate anomalies), each with its reasons.
They run after the marts refresh (declarative automation: eager on their inputs)."""

import dagster as dg
import pandas as pd
from threadpoolctl import threadpool_limits

from ml import registry
from ml.anomaly import TransactionInputError
from ml.anomaly.daily import recent_anomalies
from ml.anomaly.registry import REGISTERED_NAME as ANOMALY_NAME
from ml.anomaly.registry import detector_input
from ml.churn import panel as churn_panel
from ml.forecast.revenue import DAILY_REVENUE_SQL, daily_history
from orchestration.defs.ml.warehouse_io import md_table, read_sql, write_table
from orchestration.lib.resources import MlflowResource, WarehouseResource

CHURN_COLUMNS = {
    "customer_id": "int64",
    "churn_probability": "float64",
    "risk_band": "object",
    "top_reasons": "object",
    "mrr_minor": "int64",
    "model_version": "object",
    "snapshot_at": "datetime64[us]",
}
ANOMALY_COLUMNS = {
    "transaction_id": "object",
    "customer_id": "object",
    "created_at": "datetime64[us]",
    "amount_minor": "int64",
    "currency": "object",
    "score": "float64",
    "rank": "int64",
    "is_flagged": "bool",
    "top_reasons": "object",
    "model_version": "object",
}
DAILY_FAILURE_SQL = """
select cast(created_at as date) as ds,
       avg(case when status = 'failed' then 1.0 else 0.0 end) as y
from marts.fct_payments
where status in ('succeeded', 'failed') and invoice_id is not null
group by 1 order by 1
"""
SCORING = dg.AutomationCondition.eager()


class AnomalyScoringConfig(dg.Config):
    flag_top_n: int = 100  # transactions flagged for review, highest scores first
    daily_window_days: int = 28  # recent days judged against a forecast made without them


def _empty(columns: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})


@dg.asset(
    group_name="ml",
    kinds={"python", "duckdb"},
    deps=[dg.AssetKey("churn_model"), dg.AssetKey("customer_features")],
    automation_condition=SCORING,
    description=(
        "ml.churn_scores: churn probability, risk band and top reasons per current customer, "
        "from the `churn` champion."
    ),
)
def churn_scores(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, mlflow: MlflowResource
) -> dg.MaterializeResult:
    mlflow.setup()
    champion = registry.champion_version(churn_panel.REGISTERED_NAME)
    if champion is None:
        write_table(warehouse, "churn_scores", _empty(CHURN_COLUMNS))
        return dg.MaterializeResult(metadata={"rows": 0, "reason": "no churn champion yet"})
    model = mlflow.load_champion(churn_panel.REGISTERED_NAME).unwrap_python_model().churn
    current = read_sql(warehouse, "select * from marts.customer_features")
    with threadpool_limits(1):
        scores = churn_panel.score_current(model, current)
    snapshot = current["snapshot_at"].max() if not current.empty else pd.NaT
    scores = scores.assign(model_version=str(champion.version), snapshot_at=snapshot)
    write_table(warehouse, "churn_scores", scores)
    high = scores[scores["risk_band"] == "high"]
    return dg.MaterializeResult(
        metadata={
            "rows": len(scores),
            "model_version": str(champion.version),
            "high_risk_customers": len(high),
            "high_risk_mrr_minor": int(high["mrr_minor"].sum()) if "mrr_minor" in high else 0,
            "top_10": md_table(scores, 10),
        }
    )


@dg.asset(
    group_name="ml",
    kinds={"python", "duckdb"},
    deps=[
        dg.AssetKey("transaction_anomaly_model"),
        dg.AssetKey("ml_transactions"),
        dg.AssetKey("fct_payments"),
    ],
    automation_condition=SCORING,
    description=(
        "ml.transaction_anomaly_scores: anomaly score, rank and top reasons per transaction "
        "(the `transaction_anomaly` champion); ml.daily_anomalies: the last days' net revenue "
        "and payment failure rate against forecast intervals made without them."
    ),
)
def transaction_anomaly_scores(
    context: dg.AssetExecutionContext,
    config: AnomalyScoringConfig,
    warehouse: WarehouseResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    mlflow.setup()
    tx = read_sql(warehouse, "select * from marts.ml_transactions order by created_at")
    champion = registry.champion_version(ANOMALY_NAME)
    if champion is None or tx.empty:
        scores = _empty(ANOMALY_COLUMNS)
    else:
        detector = mlflow.load_champion(ANOMALY_NAME).unwrap_python_model().detector
        with threadpool_limits(1):
            scored = detector.score(detector_input(tx, with_labels=True))
        scores = scored.merge(
            tx[["transaction_id", "customer_id", "created_at", "amount_minor", "currency"]],
            on="transaction_id",
        )
        scores["rank"] = scores["score"].rank(ascending=False, method="first").astype("int64")
        scores["is_flagged"] = scores["rank"] <= config.flag_top_n
        scores["model_version"] = str(champion.version)
        scores = scores[list(ANOMALY_COLUMNS)].sort_values("rank").reset_index(drop=True)
    write_table(warehouse, "transaction_anomaly_scores", scores)
    daily = _daily_anomalies(context, warehouse, config.daily_window_days)
    write_table(warehouse, "daily_anomalies", daily)
    return dg.MaterializeResult(
        metadata={
            "rows": len(scores),
            "flagged": int(scores["is_flagged"].sum()) if len(scores) else 0,
            "model_version": str(champion.version) if champion is not None else "none",
            "top_10": md_table(scores.drop(columns=["model_version"]), 10),
            "anomalous_days": int(daily["is_anomaly"].sum()) if len(daily) else 0,
            "daily_anomalies": md_table(daily[daily["is_anomaly"]] if len(daily) else daily, 10),
        }
    )


def _daily_anomalies(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, window: int
) -> pd.DataFrame:
    frames = []
    for metric, sql, params in (
        ("net_revenue_minor", DAILY_REVENUE_SQL, ["INR"]),
        ("payment_failure_rate", DAILY_FAILURE_SQL, []),
    ):
        history = read_sql(warehouse, sql, params)
        if history.empty:
            continue
        history = daily_history(history)
        try:
            with threadpool_limits(1):
                frames.append(recent_anomalies(history, window).assign(metric=metric))
        except (TransactionInputError, ValueError) as exc:
            context.log.warning(f"{metric}: no daily anomaly judgement: {exc}")
    cols = ["metric", "ds", "y", "yhat", "yhat_lower", "yhat_upper", "is_anomaly", "direction"]
    if not frames:
        return pd.DataFrame(columns=[*cols, "deviation", "model"])
    return pd.concat(frames, ignore_index=True)[[*cols, "deviation", "model"]]
