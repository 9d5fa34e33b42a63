"""ML jobs: weekly training (models and forecasts) and scoring with the champions."""

import dagster as dg

TRAINING_ASSETS = (
    "revenue_forecast",
    "churn_model",
    "transaction_anomaly_model",
    "retry_timing_model",
)
SCORING_ASSETS = ("churn_scores", "transaction_anomaly_scores")

ml_training_job = dg.define_asset_job(
    "ml_training_job",
    selection=dg.AssetSelection.assets(*TRAINING_ASSETS),
    description="Retrain every model on the current marts; challengers promoted only if better.",
    tags={"paysight/area": "ml"},
)

ml_scoring_job = dg.define_asset_job(
    "ml_scoring_job",
    selection=dg.AssetSelection.assets(*SCORING_ASSETS),
    description="Score current customers and transactions with the registered champions.",
    tags={"paysight/area": "ml"},
)
