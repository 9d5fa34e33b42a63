"""Log a churn model to the active MLflow run, register it as ``churn`` and promote it only
if it beats logistic regression and the champion on the same holdout."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from ml import plots, registry
from ml.churn import panel
from ml.churn.train import ChurnModel
from ml.promotion import Published, png_array, register_and_promote
from ml.pyfunc import ChurnPyfunc

DESCRIPTION = (
    "Churn probability per customer within the label horizon (marts.customer_features "
    "columns in, customer_id and churn_probability out). Chosen by cross-validation between "
    "logistic regression, gradient boosting and their average, calibrated; judged on the "
    "latest snapshots against logistic regression."
)


def model_card(model: ChurnModel, rows: pd.DataFrame, holdout_size: int) -> registry.ModelCard:
    m = model.metrics
    return registry.ModelCard(
        name=panel.REGISTERED_NAME,
        model_type=f"CalibratedClassifierCV({model.chosen}, {model.model.method})",
        parameters=model.params,
        metrics={
            k.removeprefix("chosen_calibrated_"): v
            for k, v in m.items()
            if k.startswith("chosen_calibrated_")
        },
        baseline_metrics={
            k.removeprefix("logistic_regression_"): v
            for k, v in m.items()
            if k.startswith("logistic_regression_")
        },
        data_window={
            "from": str(rows[panel.TIME_COL].min()),
            "to": str(rows[panel.TIME_COL].max()),
            "rows": str(len(rows)),
        },
        holdout_window={"rows": model.holdout, "size": str(holdout_size)},
        features=model.features,
        notes="Label: churned_in_horizon (cancel decision or dunning end within N days).",
    )


def champion_scorer(holdout: pd.DataFrame):
    """ROC-AUC of a loaded champion on the challenger's holdout rows."""

    def score(champion) -> float:
        out = champion.predict(holdout)
        probs = out["churn_probability"] if isinstance(out, pd.DataFrame) else out
        labels = holdout[panel.LABEL].astype(int)
        return float(roc_auc_score(labels, np.asarray(probs, dtype=float)))

    return score


def publish(model: ChurnModel, panel_frame: pd.DataFrame, holdout_fraction: float) -> Published:
    """Log params, metrics, card, comparison, curves and the model; register and decide."""
    rows = panel.labelled(panel_frame)
    holdout = panel.holdout_rows(panel_frame, holdout_fraction)
    card = model_card(model, rows, len(holdout))
    registry.log_params(card.parameters | {"holdout_fraction": holdout_fraction})
    registry.log_metrics(model.metrics)
    registry.log_model_card(card)
    registry.log_table(model.comparison, "comparison.csv")
    registry.log_table(model.cv, "cross_validation.csv")
    png = plots.roc_pr_png(model.holdout_labels, model.holdout_scores, "churn holdout")
    mlflow.log_image(png_array(png), "roc_pr.png")
    example = holdout.head(5).drop(columns=[panel.LABEL])
    wrapped = ChurnPyfunc(model)
    uri = registry.log_pyfunc_model(
        wrapped,
        input_example=example,
        signature=registry.signature_for(example, wrapped.predict(None, example)),
    )
    version, decision = register_and_promote(
        uri,
        panel.REGISTERED_NAME,
        "roc_auc",
        model.metrics["roc_auc"],
        True,
        model.holdout,
        champion_scorer(holdout),
        baseline=("logistic_regression", model.metrics["logistic_regression_roc_auc"]),
        description=DESCRIPTION,
    )
    return Published(version, decision.promoted, decision.reason, uri, {"roc_pr": png})
