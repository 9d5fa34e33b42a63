"""MLflow pyfunc wrappers for models that carry more than an estimator (feature specs,
reference values for explanations, robust statistics), so ``mlflow.pyfunc.load_model``
scores a DataFrame in any process (the ``ml`` package travels with the model as code) and
``unwrap_python_model()`` gives back the full object. Outputs carry the id column."""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd

from ml.anomaly import Detector
from ml.churn import ChurnModel


class ChurnPyfunc(mlflow.pyfunc.PythonModel):
    """``predict`` returns ``customer_id`` (when given) and ``churn_probability`` per row."""

    def __init__(self, churn: ChurnModel) -> None:
        self.churn = churn

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        out = pd.DataFrame({"churn_probability": self.churn.predict_proba(model_input)})
        if "customer_id" in model_input.columns:
            out.insert(0, "customer_id", model_input["customer_id"].astype(str).to_numpy())
        return out


class DetectorPyfunc(mlflow.pyfunc.PythonModel):
    """``predict`` returns ``transaction_id`` and the anomaly ``score`` per transaction
    (features from the rows given, so pass the history the windows need, with the labels
    known so far when the detector is supervised)."""

    def __init__(self, detector: Detector) -> None:
        self.detector = detector

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        scored = self.detector.score(model_input)
        scored["transaction_id"] = scored["transaction_id"].astype(str)
        return scored[["transaction_id", "score"]]
