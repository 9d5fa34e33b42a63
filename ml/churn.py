"""Churn model: calibrated gradient boosting on a customer-by-feature table, compared on a
time-based holdout with logistic regression and a recency-frequency heuristic.

Any customer-by-snapshot table works (any numeric column is a feature); on the warehouse it
is ``marts.customer_features_monthly`` via :mod:`ml.churn_panel`. Typical columns:

- ``customer_id``, ``snapshot_date`` (time column), label ``churned_30d`` (0/1, churned
  within 30 days after the snapshot; only known for snapshots at least 30 days old)
- ``tenure_days``, ``mrr_minor`` (integer minor units), ``plan_changes_90d``,
  ``seat_changes_90d``, ``downgrade_flag``, ``pauses_365d``
- ``failed_payments_30d``, ``failed_payments_90d``, ``days_since_last_successful_payment``
- support/usage proxies: ``support_tickets_30d``, ``usage_events_30d``, ``usage_trend_30d``
  (usage last 30 days / previous 30 days)
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ml.classify import TrainingInputError, as_matrix, binary_metrics, numeric_features, time_split

RECENCY_COLUMNS = ("days_since_last_successful_payment", "days_since_last_activity")
FREQUENCY_COLUMNS = ("usage_events_30d", "payments_90d", "logins_30d")
ID_COLUMNS = {"customer_id", "subscription_id"}


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


def _shown(value: float) -> str:
    # A missing day gap means "never happened" (e.g. no successful payment yet).
    return "never" if value != value else f"{value:.4g}"


@dataclass
class ChurnModel:
    """Calibrated churn classifier with its holdout comparison table."""

    model: CalibratedClassifierCV
    features: list[str]
    medians: dict[str, float]
    comparison: pd.DataFrame
    metrics: dict[str, float]
    holdout: str
    params: dict[str, object] = field(default_factory=dict)
    # Holdout labels and each compared model's scores, for curves and champion comparisons.
    holdout_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    holdout_scores: dict[str, np.ndarray] = field(default_factory=dict)

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        """Probability of churn per row."""
        return self.model.predict_proba(as_matrix(df, self.features))[:, 1]

    def explain(self, df: pd.DataFrame, k: int = 3) -> pd.DataFrame:
        """Top reasons per row: features whose value, reset to the training median, lowers
        the churn probability most (a simple, model-agnostic what-if attribution)."""
        x = as_matrix(df, self.features)
        base = self.model.predict_proba(x)[:, 1]
        effects = np.zeros((len(x), len(self.features)))
        for j, col in enumerate(self.features):
            changed = x.copy()
            changed[col] = self.medians[col]
            effects[:, j] = base - self.model.predict_proba(changed)[:, 1]
        order = np.argsort(-effects, axis=1)[:, :k]
        reasons = []
        for i in range(len(x)):
            parts = [
                f"{self.features[j]}={_shown(x.iat[i, j])} (+{effects[i, j]:.3f})"
                for j in order[i]
                if effects[i, j] > 0.005  # ignore rounding-level effects
            ]
            reasons.append("; ".join(parts))
        out = pd.DataFrame({"churn_probability": base, "top_reasons": reasons}, index=df.index)
        if "customer_id" in df.columns:
            out.insert(0, "customer_id", df["customer_id"].to_numpy())
        return out.reset_index(drop=True)


# Tree sizes tried; churn tables are small (hundreds of churners), so shallow trees with large
# leaves often generalize better than deep ones. Chosen inside the training window only.
TREE_GRID = (
    {"max_leaf_nodes": 4, "min_samples_leaf": 20},
    {"max_leaf_nodes": 4, "min_samples_leaf": 50},
    {"max_leaf_nodes": 15, "min_samples_leaf": 20},
    {"max_leaf_nodes": 15, "min_samples_leaf": 50},
)


def _select_tree_size(
    train_df: pd.DataFrame, x: pd.DataFrame, y: np.ndarray, time_col: str | None, seed: int
) -> dict[str, int]:
    """Pick the tree size by ROC-AUC on the latest quarter of the TRAINING window (an inner
    time split), so the holdout stays untouched by any choice."""
    inner, _ = time_split(train_df, time_col, 0.25, seed)
    if len(np.unique(y[~inner])) < 2 or len(np.unique(y[inner])) < 2:
        return dict(TREE_GRID[0])
    best, best_auc = TREE_GRID[0], -1.0
    for params in TREE_GRID:
        candidate = HistGradientBoostingClassifier(
            max_iter=150, learning_rate=0.05, l2_regularization=1.0, random_state=seed, **params
        ).fit(x[~inner], y[~inner])
        auc = roc_auc_score(y[inner], candidate.predict_proba(x[inner])[:, 1])
        if auc > best_auc:
            best, best_auc = params, auc
    return dict(best)


def fit_churn_model(
    df: pd.DataFrame,
    label_col: str,
    time_col: str | None = None,
    features: list[str] | None = None,
    holdout_fraction: float = 0.25,
    seed: int = 0,
) -> ChurnModel:
    """Train on the earlier rows, compare on the latest ``holdout_fraction`` by ``time_col``.

    The returned model is the calibrated gradient boosting trained on the earlier window,
    so the comparison table describes exactly the model that scores.
    """
    if label_col not in df.columns:
        raise TrainingInputError(f"label column {label_col!r} is not in the table")
    labels = pd.to_numeric(df[label_col], errors="coerce")
    if labels.isna().any() or not labels.isin([0, 1]).all():
        raise TrainingInputError(f"{label_col} must be 0/1 for every row (drop unlabelled rows)")
    y = labels.astype(int).to_numpy()
    cols = features or numeric_features(
        df, {label_col, *ID_COLUMNS} | ({time_col} if time_col else set())
    )
    if not cols:
        raise TrainingInputError("no numeric feature columns found")
    x = as_matrix(df, cols)
    holdout, window = time_split(df, time_col, holdout_fraction, seed)
    train = ~holdout
    for name, mask in (("training", train), ("holdout", holdout)):
        if len(np.unique(y[mask])) < 2 or y[mask].sum() < 5:
            raise TrainingInputError(f"the {name} window needs at least 5 churners and 5 stayers")
    tree = _select_tree_size(df[train], x[train], y[train], time_col, seed)
    hgb = HistGradientBoostingClassifier(
        max_iter=150, learning_rate=0.05, l2_regularization=1.0, random_state=seed, **tree
    )
    model = CalibratedClassifierCV(hgb, method="isotonic", cv=3).fit(x[train], y[train])
    logreg = make_pipeline(
        SimpleImputer(strategy="median"), StandardScaler(), LogisticRegression(max_iter=1000)
    ).fit(x[train], y[train])
    scores = {
        "hgb_calibrated": model.predict_proba(x[holdout])[:, 1],
        "logistic_regression": logreg.predict_proba(x[holdout])[:, 1],
    }
    # Without recency/frequency columns there is no heuristic; compare the two models only.
    with contextlib.suppress(TrainingInputError):
        scores["recency_frequency"] = recency_frequency_score(df[holdout])
    rows = [
        {"model": name, **binary_metrics(y[holdout], s, probabilities=name != "recency_frequency")}
        for name, s in scores.items()
    ]
    comparison = pd.DataFrame(rows)
    by = comparison.set_index("model")
    metrics = {
        f"{m}_{k}": float(by.loc[m, k])
        for m in by.index
        for k in ("roc_auc", "pr_auc", "brier", "lift_at_10pct")
    }
    metrics.update(
        {"roc_auc": metrics["hgb_calibrated_roc_auc"], "brier": metrics["hgb_calibrated_brier"]}
    )
    medians = {c: float(np.nanmedian(x.loc[train, c])) for c in cols}
    return ChurnModel(
        model=model,
        features=cols,
        medians=medians,
        comparison=comparison,
        metrics=metrics,
        holdout=window,
        params={
            "max_iter": 150,
            "learning_rate": 0.05,
            **tree,
            "calibration": "isotonic",
        },
        holdout_labels=y[holdout],
        holdout_scores=scores,
    )
