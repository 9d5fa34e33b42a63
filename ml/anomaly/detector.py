"""Transaction anomaly detector: robust one-sided z-scores always, plus a supervised model
when labels exist, chosen on a LATER time window than it was trained on."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score, roc_auc_score

from ml.anomaly.features import (
    TransactionInputError,
    feature_columns,
    transaction_features,
    validate_transactions,
)

# Direction in which a feature is suspicious: +1 high is risky, -1 low is risky.
RISK_DIRECTIONS: dict[str, int] = {
    "amount_vs_plan": 1,
    "amount_vs_cust_mean": 1,
    "amount_z_cust": 1,
    "cust_count_1d": 1,
    "cust_count_7d": 1,
    "cust_log_sum_1d": 1,
    "inst_count_1d": 1,
    "new_instrument": 1,
    "night": 1,
    "log_days_since_prev": -1,
}
# Ratios are heavy-tailed: score them on a log scale so a 10x charge is not 10x a 2x one.
LOG_FEATURES = ("amount_vs_plan", "amount_vs_cust_mean")
MAX_CONTRIBUTION = 8.0
BASELINE_FEATURE = "amount_vs_cust_mean"


@dataclass
class Detector:
    """Fitted detector. ``score`` returns ``transaction_id, score, top_reasons``."""

    medians: dict[str, float]
    scales: dict[str, float]
    method: str = "robust_z"
    supervised: HistGradientBoostingClassifier | None = None
    supervised_features: list[str] = field(default_factory=list)
    evaluation: pd.DataFrame = field(default_factory=pd.DataFrame)
    metrics: dict[str, float] = field(default_factory=dict)

    def contributions(self, feats: pd.DataFrame) -> pd.DataFrame:
        """Per-feature one-sided robust z-scores, capped so no single feature dominates."""
        out = {}
        for name, direction in RISK_DIRECTIONS.items():
            if name not in feats.columns:
                continue
            x = _transform(name, feats[name].to_numpy(dtype=float))
            z = direction * (x - self.medians[name]) / self.scales[name]
            out[name] = np.clip(np.nan_to_num(z, nan=0.0), 0.0, MAX_CONTRIBUTION)
        return pd.DataFrame(out, index=feats.index)

    def score(self, df: pd.DataFrame, since: pd.Timestamp | None = None) -> pd.DataFrame:
        """Score transactions. Pass at least 30 days of history before ``since`` so the
        velocity features see the past; only rows at or after ``since`` are returned."""
        feats = transaction_features(df)
        contrib = self.contributions(feats)
        if self.method == "supervised" and self.supervised is not None:
            score = self.supervised.predict_proba(feats[self.supervised_features])[:, 1]
        else:
            score = contrib.sum(axis=1).to_numpy()
        result = pd.DataFrame(
            {
                "transaction_id": feats["transaction_id"],
                "score": score,
                "top_reasons": _top_reasons(contrib, feats),
            }
        )
        if since is not None:
            result = result[feats["created_at"] >= pd.Timestamp(since)]
        return result.reset_index(drop=True)


def _transform(name: str, x: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(x, 1e-6)) if name in LOG_FEATURES else x


def _top_reasons(contrib: pd.DataFrame, feats: pd.DataFrame, k: int = 3) -> list[str]:
    """Names and values of the ``k`` largest contributions of at least one robust sd."""
    values = contrib.to_numpy()
    names = np.array(contrib.columns)
    raw = feats[list(contrib.columns)].to_numpy()
    reasons = [""] * len(values)
    # Most transactions have nothing unusual; only build strings for those that do.
    flagged = np.flatnonzero(values.max(axis=1, initial=0.0) >= 1.0)
    order = np.argsort(-values[flagged], axis=1)[:, :k]
    for row, cols in zip(flagged, order, strict=True):
        reasons[row] = ", ".join(
            f"{names[j]}={raw[row, j]:.3g}" for j in cols if values[row, j] >= 1.0
        )
    return reasons


def _robust_stats(feats: pd.DataFrame) -> tuple[dict[str, float], dict[str, float]]:
    medians, scales = {}, {}
    for name in RISK_DIRECTIONS:
        if name not in feats.columns:
            continue
        x = _transform(name, feats[name].to_numpy(dtype=float))
        med = float(np.nanmedian(x))
        mad = 1.4826 * float(np.nanmedian(np.abs(x - med)))
        # Binary and mostly-constant features have MAD 0; fall back to the std, then 1.
        scale = mad if mad > 1e-9 else float(np.nanstd(x))
        medians[name], scales[name] = med, scale if scale > 1e-9 else 1.0
    return medians, scales


def precision_at_k(labels: np.ndarray, scores: np.ndarray, k: int = 100) -> float:
    k = min(k, len(scores))
    top = np.argsort(-scores, kind="mergesort")[:k]
    return float(np.mean(labels[top])) if k else float("nan")


def _evaluate(name: str, labels: np.ndarray, scores: np.ndarray) -> dict[str, object]:
    both = len(np.unique(labels)) == 2
    return {
        "method": name,
        "roc_auc": roc_auc_score(labels, scores) if both else np.nan,
        "pr_auc": average_precision_score(labels, scores) if both else np.nan,
        "precision_at_100": precision_at_k(labels, scores, 100),
        "positives": int(labels.sum()),
        "rows": len(labels),
    }


def fit_detector(
    df: pd.DataFrame, label_col: str = "label", train_fraction: float = 0.7, seed: int = 0
) -> Detector:
    """Fit on a transactions table; with labels, compare methods on the later time window.

    The earliest ``train_fraction`` of time trains (robust statistics and the supervised
    model); the rest is the holdout where robust z, the supervised model and a one-feature
    baseline (amount vs the customer's mean) are compared. The supervised model is used for
    scoring only if it beats robust z on holdout PR-AUC, and is then refit on all rows.
    """
    tx = validate_transactions(df)
    feats = transaction_features(tx)
    cols = feature_columns(feats)
    has_labels = label_col in tx.columns and tx[label_col].notna().all()
    if not has_labels:
        medians, scales = _robust_stats(feats)
        return Detector(medians, scales, metrics={"rows": float(len(feats))})
    labels = tx[label_col].astype(int).to_numpy()
    cutoff = feats["created_at"].quantile(train_fraction)
    train = (feats["created_at"] < cutoff).to_numpy()
    test = ~train
    if labels[train].sum() < 5 or len(np.unique(labels[test])) < 2:
        raise TransactionInputError(
            f"labels need >=5 positives before {cutoff} and both classes after it; "
            "pass more history or drop the label column for unsupervised scoring"
        )
    medians, scales = _robust_stats(feats[train])
    detector = Detector(medians, scales)
    robust_scores = detector.contributions(feats[test]).sum(axis=1).to_numpy()
    model = HistGradientBoostingClassifier(
        max_iter=100,
        learning_rate=0.1,
        max_leaf_nodes=15,
        class_weight="balanced",
        random_state=seed,
    )
    model.fit(feats.loc[train, cols], labels[train])
    sup_scores = model.predict_proba(feats.loc[test, cols])[:, 1]
    rows = [
        _evaluate(
            "baseline_amount_ratio", labels[test], feats.loc[test, BASELINE_FEATURE].to_numpy()
        ),
        _evaluate("robust_z", labels[test], robust_scores),
        _evaluate("supervised_hgb", labels[test], sup_scores),
    ]
    evaluation = pd.DataFrame(rows)
    evaluation["holdout_start"] = cutoff
    by = evaluation.set_index("method")
    use_supervised = by.loc["supervised_hgb", "pr_auc"] > by.loc["robust_z", "pr_auc"]
    detector.evaluation = evaluation
    detector.metrics = {
        f"{m}_{k}": float(by.loc[m, k])
        for m in by.index
        for k in ("roc_auc", "pr_auc", "precision_at_100")
    }
    if use_supervised:
        detector.method = "supervised"
        detector.supervised = model.fit(feats[cols], labels)
        detector.supervised_features = cols
    return detector
