"""Churn on the warehouse: train on the monthly snapshot panel (``customer_features_monthly``:
one row per customer and month end, label ``churned_in_horizon``), score the current snapshot
(``customer_features``) with top reasons."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.churn.train import ChurnModel, fit_churn_model
from ml.classify import TrainingInputError, numeric_features, time_split

LABEL = "churned_in_horizon"
TIME_COL = "snapshot_at"
REGISTERED_NAME = "churn"
# Identifiers, flags of the snapshot itself and the label's definition are not features.
NON_FEATURES = {
    "customer_id",
    "snapshot_at",
    "snapshot_date",
    "is_month_end",
    "is_current",
    "label_horizon_days",
    LABEL,
}
RISK_BANDS = ((0.5, "high"), (0.2, "medium"), (0.0, "low"))


def feature_columns(panel: pd.DataFrame) -> list[str]:
    """Numeric columns of the panel that describe the customer before the snapshot."""
    return numeric_features(panel, NON_FEATURES)


def labelled(panel: pd.DataFrame) -> pd.DataFrame:
    """Rows whose label window has fully passed, sorted by snapshot (label as 0/1 ints)."""
    if LABEL not in panel.columns or TIME_COL not in panel.columns:
        raise TrainingInputError(f"the panel needs columns {LABEL!r} and {TIME_COL!r}")
    rows = panel[panel[LABEL].notna()].copy()
    rows[LABEL] = rows[LABEL].astype(int)
    return rows.sort_values([TIME_COL, "customer_id"], kind="mergesort").reset_index(drop=True)


def fit_panel(panel: pd.DataFrame, holdout_fraction: float = 0.25, seed: int = 0) -> ChurnModel:
    """Fit on the earlier snapshots, compare on the latest ``holdout_fraction`` of them."""
    rows = labelled(panel)
    return fit_churn_model(
        rows,
        LABEL,
        time_col=TIME_COL,
        features=feature_columns(rows),
        holdout_fraction=holdout_fraction,
        seed=seed,
    )


def holdout_rows(panel: pd.DataFrame, holdout_fraction: float = 0.25) -> pd.DataFrame:
    """The same time-based holdout :func:`fit_panel` evaluates on (to re-score a champion)."""
    rows = labelled(panel)
    mask, _ = time_split(rows, TIME_COL, holdout_fraction)
    return rows[mask].reset_index(drop=True)


def risk_band(probability: np.ndarray) -> list[str]:
    return [next(name for floor, name in RISK_BANDS if p >= floor) for p in probability]


def score_current(model: ChurnModel, current: pd.DataFrame, k: int = 3) -> pd.DataFrame:
    """``customer_id, churn_probability, risk_band, top_reasons`` for the current snapshot."""
    if current.empty:
        return pd.DataFrame(
            columns=["customer_id", "churn_probability", "risk_band", "top_reasons"]
        )
    scored = model.explain(current, k=k)
    scored.insert(2, "risk_band", risk_band(scored["churn_probability"].to_numpy()))
    if "mrr_minor" in current.columns:
        scored["mrr_minor"] = current["mrr_minor"].astype("int64").to_numpy()
    return scored.sort_values("churn_probability", ascending=False).reset_index(drop=True)


def latest_snapshot(panel: pd.DataFrame) -> pd.DataFrame:
    """The labelled rows of the latest snapshot (what the champion learned from last)."""
    rows = labelled(panel)
    return rows[rows[TIME_COL] == rows[TIME_COL].max()]
