"""Drift sensor: when today's customers no longer look like the ones the churn champion was
trained on (population stability index on key features), request a training run."""

import dagster as dg

from ml.drift import feature_drift
from orchestration.defs.ml.jobs import ml_training_job
from orchestration.defs.ml.warehouse_io import DRIFT_REFERENCE_TABLE, read_sql, table_exists
from orchestration.lib.resources import WarehouseResource

KEY_FEATURES = [
    "tenure_days",
    "mrr_minor",
    "failed_payments_90d",
    "days_since_last_successful_payment",
    "open_invoices",
]
PSI_RETRAIN = 0.25  # the usual "significant shift" threshold


def drift_decision(
    warehouse: WarehouseResource, threshold: float = PSI_RETRAIN
) -> dg.RunRequest | dg.SkipReason:
    """A run request when any key feature's PSI exceeds ``threshold``; otherwise why not."""
    if not table_exists(warehouse, "ml", DRIFT_REFERENCE_TABLE):
        return dg.SkipReason("no training snapshot yet (train churn_model first)")
    if not table_exists(warehouse, "marts", "customer_features"):
        return dg.SkipReason("marts.customer_features does not exist yet")
    reference = read_sql(warehouse, f"select * from ml.{DRIFT_REFERENCE_TABLE}")
    current = read_sql(warehouse, "select * from marts.customer_features")
    if reference.empty or current.empty:
        return dg.SkipReason("the training snapshot or the current customers are empty")
    psi = feature_drift(reference, current, KEY_FEATURES)
    worst = psi.iloc[0]
    summary = ", ".join(f"{r.feature}={r.psi:.3f}" for r in psi.itertuples())
    if worst["psi"] <= threshold:
        return dg.SkipReason(f"no drift above PSI {threshold}: {summary}")
    run_id = str(reference["mlflow_run_id"].iloc[0])
    return dg.RunRequest(
        # One retraining per training snapshot: the next one replaces the reference.
        run_key=f"churn-drift-{run_id}",
        tags={
            "paysight/trigger": "drift",
            "paysight/drift_feature": str(worst["feature"]),
            "paysight/drift_psi": f"{worst['psi']:.3f}",
        },
    )


@dg.sensor(
    job=ml_training_job,
    minimum_interval_seconds=3600,
    description=f"PSI of {', '.join(KEY_FEATURES)} (current customers vs the churn "
    f"champion's training snapshot); above {PSI_RETRAIN} it requests ml_training_job.",
)
def churn_feature_drift_sensor(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource
) -> dg.RunRequest | dg.SkipReason:
    return drift_decision(warehouse)
