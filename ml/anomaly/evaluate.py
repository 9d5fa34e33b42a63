"""How a detector is judged on the test window: ROC-AUC, average precision, precision@100."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from ml.anomaly.detector import precision_at_k

# The one-feature baseline: how unusual the amount is for the customer.
BASELINE = "amount_vs_cust_mean"


def evaluate(name: str, labels: np.ndarray, scores: np.ndarray) -> dict[str, object]:
    both = len(np.unique(labels)) == 2
    scores = np.nan_to_num(np.asarray(scores, dtype=float), nan=0.0)
    return {
        "method": name,
        "roc_auc": roc_auc_score(labels, scores) if both else np.nan,
        "pr_auc": average_precision_score(labels, scores) if both else np.nan,
        "precision_at_100": precision_at_k(labels, scores, 100),
        "positives": int(labels.sum()),
        "rows": len(labels),
    }


def evaluation_table(
    labels: np.ndarray, scores: dict[str, np.ndarray], start: pd.Timestamp, chosen: str
) -> pd.DataFrame:
    table = pd.DataFrame([evaluate(name, labels, s) for name, s in scores.items()])
    table["holdout_start"] = start
    table["chosen"] = table["method"] == chosen
    return table
