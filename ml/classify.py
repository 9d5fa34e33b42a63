"""Shared helpers for binary classifiers: time-based splits and holdout metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score


class TrainingInputError(ValueError):
    """A training table is unusable; the message names the problem and the fix."""


def time_split(
    df: pd.DataFrame, time_col: str | None, holdout_fraction: float, seed: int = 0
) -> tuple[np.ndarray, str]:
    """Boolean mask of holdout rows: the latest ``holdout_fraction`` of time when a time
    column exists (never a random shuffle across time), else a seeded random split."""
    if not 0 < holdout_fraction < 1:
        raise TrainingInputError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
    if time_col is None:
        rng = np.random.default_rng(seed)
        return rng.random(len(df)) < holdout_fraction, "random split (no time column)"
    if time_col not in df.columns:
        raise TrainingInputError(f"time column {time_col!r} is not in the table")
    t = pd.to_datetime(df[time_col], utc=True)
    cutoff = t.quantile(1 - holdout_fraction)
    mask = (t >= cutoff).to_numpy()
    if mask.all() or not mask.any():
        raise TrainingInputError(f"{time_col} has too few distinct times for a time-based holdout")
    return mask, f"{time_col} >= {cutoff.isoformat()}"


def lift_at(labels: np.ndarray, scores: np.ndarray, fraction: float = 0.1) -> float:
    """Positive rate in the top ``fraction`` by score divided by the overall positive rate."""
    k = max(1, round(len(scores) * fraction))
    top = np.argsort(-scores, kind="mergesort")[:k]
    base = labels.mean()
    return float(labels[top].mean() / base) if base > 0 else float("nan")


def binary_metrics(
    labels: np.ndarray, probs: np.ndarray, probabilities: bool = True
) -> dict[str, float]:
    """Holdout metrics; pass ``probabilities=False`` for ranking scores (no Brier then)."""
    labels = np.asarray(labels, dtype=int)
    probs = np.asarray(probs, dtype=float)
    both = len(np.unique(labels)) == 2
    in_unit = probabilities and bool(np.all((probs >= 0) & (probs <= 1)))
    return {
        "roc_auc": float(roc_auc_score(labels, probs)) if both else float("nan"),
        "pr_auc": float(average_precision_score(labels, probs)) if both else float("nan"),
        # A heuristic score is not a probability; its Brier score would be meaningless.
        "brier": float(brier_score_loss(labels, probs)) if in_unit else float("nan"),
        "lift_at_10pct": lift_at(labels, probs, 0.1),
        "positive_rate": float(labels.mean()),
        "rows": float(len(labels)),
    }


def numeric_features(df: pd.DataFrame, exclude: set[str]) -> list[str]:
    cols = []
    for col in df.columns:
        if col in exclude:
            continue
        if pd.api.types.is_bool_dtype(df[col]) or pd.api.types.is_numeric_dtype(df[col]):
            cols.append(col)
    return cols


def as_matrix(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise TrainingInputError(f"missing feature columns {missing}")
    return df[cols].astype("float64")
