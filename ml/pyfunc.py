"""MLflow pyfunc wrappers for models that carry more than an estimator (feature lists,
medians for explanations, robust statistics), so ``mlflow.pyfunc.load_model`` scores a
DataFrame in any process and ``unwrap_python_model()`` gives back the full object."""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd

from ml.anomaly import Detector
from ml.churn import ChurnModel


class ChurnPyfunc(mlflow.pyfunc.PythonModel):
    """``predict`` returns the churn probability per row of a customer-feature table."""

    def __init__(self, churn: ChurnModel) -> None:
        self.churn = churn

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.Series:
        return pd.Series(self.churn.predict_proba(model_input), name="churn_probability")


class DetectorPyfunc(mlflow.pyfunc.PythonModel):
    """``predict`` returns the anomaly score per transaction (features from the rows given,
    so pass the history the velocity features need)."""

    def __init__(self, detector: Detector) -> None:
        self.detector = detector

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.Series:
        scored = self.detector.score(model_input)
        return scored.set_index("transaction_id")["score"]
