"""How a churn model is judged: holdout metrics next to a recency-frequency heuristic."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.classify import TrainingInputError, binary_metrics

RECENCY_COLUMNS = ("days_since_last_successful_payment", "days_since_last_activity")
FREQUENCY_COLUMNS = ("usage_events_30d", "payments_90d", "logins_30d")
HEURISTIC = "recency_frequency"


def recency_frequency_score(df: pd.DataFrame) -> np.ndarray:
    """Heuristic baseline: long silence and low activity mean risk (rank-averaged, 0..1)."""
    recency = next((c for c in RECENCY_COLUMNS if c in df.columns), None)
    frequency = next((c for c in FREQUENCY_COLUMNS if c in df.columns), None)
    if recency is None and frequency is None:
        raise TrainingInputError(
            f"the heuristic needs one of {RECENCY_COLUMNS} or {FREQUENCY_COLUMNS}"
        )
    parts = []
    if recency is not None:
        parts.append(df[recency].rank(pct=True).to_numpy())
    if frequency is not None:
        parts.append(1.0 - df[frequency].rank(pct=True).to_numpy())
    return np.nan_to_num(np.mean(parts, axis=0), nan=0.5)


def comparison_table(labels: np.ndarray, scores: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row of holdout metrics per scorer (the heuristic gets no Brier score)."""
    return pd.DataFrame(
        [
            {"model": name, **binary_metrics(labels, s, probabilities=name != HEURISTIC)}
            for name, s in scores.items()
        ]
    )
