"""Churn: features of any customer table, model choice by cross-validation, calibration,
holdout comparison with logistic regression and a heuristic, and the warehouse panel."""

from ml.churn.evaluate import recency_frequency_score
from ml.churn.features import FeatureSpec, infer_spec
from ml.churn.train import ChurnModel, fit_churn_model

__all__ = [
    "ChurnModel",
    "FeatureSpec",
    "fit_churn_model",
    "infer_spec",
    "recency_frequency_score",
]
