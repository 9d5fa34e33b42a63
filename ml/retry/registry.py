"""Log the retry-timing pipeline (sklearn flavour: ``predict_proba`` gives the success
probability, and the pyfunc flavour returns probabilities too), register it as
``retry_timing`` and promote it only if it beats the per-decline-code rate and the champion."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from ml import plots, registry
from ml.classify import time_split
from ml.promotion import Published, png_array, register_and_promote
from ml.retry.train import LABEL, REGISTERED_NAME, RetryModel, prepare

DESCRIPTION = (
    "Probability that a retry offset_hours after a failed payment succeeds (retry features "
    "in; pyfunc predict returns [P(fail), P(success)] per row, sklearn predict_proba the same)."
)


def log_model(model: RetryModel, sample: pd.DataFrame) -> str:
    example = prepare(sample).head(5)
    probs = model.pipeline.predict_proba(example)
    return registry.log_sklearn_model(
        model.pipeline,
        input_example=example,
        predict_fn="predict_proba",
        signature=registry.signature_for(example, probs),
    )


def log_and_register(model: RetryModel, sample: pd.DataFrame, holdout_window: str) -> str:
    """Log the pipeline to the active MLflow run and register it as ``retry_timing``.

    Load it back with ``RetryModel.from_pipeline(registry.load_champion_sklearn(...))``.
    """
    return registry.register_model(
        log_model(model, sample),
        REGISTERED_NAME,
        {"roc_auc": model.metrics.get("hgb_roc_auc", float("nan"))},
        holdout_window,
        description=DESCRIPTION,
    )


def holdout_frame(outcomes: pd.DataFrame, holdout_fraction: float) -> pd.DataFrame:
    mask, _ = time_split(outcomes, "failed_at", holdout_fraction)
    return outcomes[mask]


def publish(model: RetryModel, outcomes: pd.DataFrame, holdout_fraction: float) -> Published:
    holdout = holdout_frame(outcomes, holdout_fraction)
    labels = holdout[LABEL].astype(int).to_numpy()
    png = plots.roc_pr_png(
        labels, {"hgb": model.pipeline.predict_proba(prepare(holdout))[:, 1]}, "retry holdout"
    )

    def champion_auc(champion) -> float:
        probs = np.asarray(champion.predict(prepare(holdout)), dtype=float)
        return float(roc_auc_score(labels, probs[:, 1] if probs.ndim == 2 else probs))

    registry.log_params(model.params | {"holdout_fraction": holdout_fraction})
    registry.log_metrics(model.metrics)
    registry.log_table(model.comparison, "comparison.csv")
    mlflow.log_image(png_array(png), "roc_pr.png")
    uri = log_model(model, outcomes)
    version, decision = register_and_promote(
        uri,
        REGISTERED_NAME,
        "roc_auc",
        model.metrics["hgb_roc_auc"],
        True,
        model.holdout,
        champion_auc,
        baseline=("decline_code_rate", model.metrics["decline_code_rate_roc_auc"]),
        description=DESCRIPTION,
    )
    return Published(version, decision.promoted, decision.reason, uri, {"roc_pr": png})
