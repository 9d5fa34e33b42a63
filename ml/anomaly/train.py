"""Fit a transaction detector on a delay-respecting split.

A label is known only ``label_delay`` after its transaction. Training at time ``C`` may
therefore use the transactions before ``C - label_delay`` (and their labels); the test window
is the transactions from ``C`` on; the rows in between only feed the features' history. The
model family (random forest, gradient boosting, extra trees, the average of the three, or
robust z-scores) is chosen
on the same kind of split INSIDE the training window, so the test window judges the choice
once. Without labels the detector is unsupervised (robust z-scores on past-only features).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.ensemble import (
    ExtraTreesClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline

from ml.anomaly.detector import Detector, robust_stats
from ml.anomaly.evaluate import BASELINE, evaluate, evaluation_table
from ml.anomaly.features import (
    DEFAULT_LABEL_DELAY,
    TransactionInputError,
    extra_columns,
    feature_columns,
    transaction_features,
    validate_transactions,
)

SUPERVISED = ("random_forest", "gradient_boosting", "extra_trees", "average")
MEMBERS = ("random_forest", "gradient_boosting", "extra_trees")  # what "average" averages


def random_forest(seed: int) -> Pipeline:
    """The card-fraud literature's baseline classifier (missing values imputed as -1)."""
    return make_pipeline(
        SimpleImputer(strategy="constant", fill_value=-1.0, keep_empty_features=True),
        RandomForestClassifier(
            n_estimators=100, max_depth=20, min_samples_leaf=2, n_jobs=1, random_state=seed
        ),
    )


def extra_trees(seed: int) -> Pipeline:
    """Extremely randomized trees: split points drawn at random, so their errors differ from
    the forest's and the booster's, which is what an average of the three gains from."""
    return make_pipeline(
        SimpleImputer(strategy="constant", fill_value=-1.0, keep_empty_features=True),
        ExtraTreesClassifier(n_estimators=200, min_samples_leaf=3, n_jobs=1, random_state=seed),
    )


def gradient_boosting(seed: int) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        learning_rate=0.05,
        max_iter=300,
        max_leaf_nodes=31,
        min_samples_leaf=40,
        l2_regularization=1.0,
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=30,
        random_state=seed,
    )


class AverageClassifier:
    """The mean of fitted classifiers' probabilities (an ensemble of the members)."""

    def __init__(self, models: Sequence[object]) -> None:
        self.models = list(models)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.mean([m.predict_proba(x) for m in self.models], axis=0)


def _fit_models(x: np.ndarray, y: np.ndarray, seed: int, which: Sequence[str]) -> dict:
    build = {"random_forest": random_forest, "gradient_boosting": gradient_boosting,
             "extra_trees": extra_trees}  # fmt: skip
    fitted: dict[str, object] = {}
    for name in MEMBERS:
        if name in which or "average" in which:
            fitted[name] = build[name](seed).fit(x, y)
    if "average" in which:
        fitted["average"] = AverageClassifier([fitted[m] for m in MEMBERS])
    return {k: v for k, v in fitted.items() if k in which}


def delay_split(
    times: pd.Series, test_fraction: float, delay: pd.Timedelta
) -> tuple[np.ndarray, np.ndarray, pd.Timestamp]:
    """Training rows (labels known at the cutoff), test rows (from the cutoff) and the cutoff."""
    if not 0 < test_fraction < 1:
        raise TransactionInputError(f"test_fraction must be in (0, 1), got {test_fraction}")
    cutoff = times.quantile(1 - test_fraction)
    train = (times < cutoff - delay).to_numpy()
    test = (times >= cutoff).to_numpy()
    return train, test, cutoff


def _choose(
    feats: pd.DataFrame, labels: np.ndarray, train: np.ndarray, delay: pd.Timedelta, seed: int
) -> str:
    """Pick the method by average precision on a delay-respecting split of the training rows."""
    inner_fit, inner_val, _ = delay_split(feats.loc[train, "created_at"], 0.25, delay)
    idx = np.flatnonzero(train)
    fit_idx, val_idx = idx[inner_fit], idx[inner_val]
    if labels[fit_idx].sum() < 5 or len(np.unique(labels[val_idx])) < 2:
        return "average"  # too few labels to choose: the ensemble is the safe default
    cols = feature_columns(feats)
    x = feats[cols].to_numpy(dtype=float)
    models = _fit_models(x[fit_idx], labels[fit_idx], seed, SUPERVISED)
    medians, scales = robust_stats(feats.iloc[fit_idx])
    scores = {name: m.predict_proba(x[val_idx])[:, 1] for name, m in models.items()}
    scores["robust_z"] = Detector(medians, scales).raw_scores(feats.iloc[val_idx])
    ap = {name: evaluate(name, labels[val_idx], s)["pr_auc"] for name, s in scores.items()}
    return max(ap, key=lambda name: (ap[name], name == "average"))


def fit_detector(
    df: pd.DataFrame,
    label_col: str = "label",
    label_delay: pd.Timedelta | str = DEFAULT_LABEL_DELAY,
    test_fraction: float = 0.3,
    seed: int = 0,
    extra_features: Sequence[str] | None = None,
) -> Detector:
    """Fit on a transactions table (schema in :mod:`ml.anomaly.features`).

    With labels in ``label_col``: features use only labels older than ``label_delay``; the
    method is chosen inside the training window, judged on the latest ``test_fraction`` of
    time against robust z-scores, a random forest, gradient boosting and the one-feature
    baseline (amount vs the customer's usual, or the amount itself); then refit on every
    row whose label is known by the end of the data. Without labels: robust z-scores.
    ``extra_features`` are numeric columns passed through (``None``: every numeric column
    outside the schema whose name does not give the label away; ``[]``: none).
    """
    delay = pd.Timedelta(label_delay)
    tx = validate_transactions(df)
    has_labels = label_col in tx.columns and tx[label_col].notna().any()
    extra = extra_columns(tx, label_col if has_labels else None, extra_features)
    if not has_labels:
        feats = transaction_features(tx, None, delay, extra)
        medians, scales = robust_stats(feats)
        return Detector(
            medians, scales, label_delay=delay, extra=extra, metrics={"rows": float(len(feats))}
        )
    feats = transaction_features(tx, label_col, delay, extra)
    labels = pd.to_numeric(tx[label_col], errors="coerce").fillna(0).astype(int).to_numpy()
    train, test, cutoff = delay_split(feats["created_at"], test_fraction, delay)
    if labels[train].sum() < 5 or len(np.unique(labels[test])) < 2:
        raise TransactionInputError(
            f"labels need >=5 positives before {cutoff - delay} (the cutoff {cutoff} less the "
            f"label delay {delay}) and both classes after the cutoff; pass more history or "
            "drop the label column for unsupervised scoring"
        )
    chosen = _choose(feats, labels, train, delay, seed)
    cols = feature_columns(feats)
    x = feats[cols].to_numpy(dtype=float)
    models = _fit_models(x[train], labels[train], seed, SUPERVISED)
    medians, scales = robust_stats(feats[train])
    scores = {name: m.predict_proba(x[test])[:, 1] for name, m in models.items()}
    scores["robust_z"] = Detector(medians, scales).raw_scores(feats[test])
    baseline = feats[BASELINE] if BASELINE in feats else feats["log_amount"]
    scores = {"baseline": baseline.to_numpy()[test], **scores}
    evaluation = evaluation_table(labels[test], scores, cutoff, chosen)
    detector = Detector(medians, scales, label_col=label_col, label_delay=delay, extra=extra)
    detector.evaluation = evaluation
    by = evaluation.set_index("method")
    detector.metrics = {
        f"{m}_{k}": float(by.loc[m, k])
        for m in by.index
        for k in ("roc_auc", "pr_auc", "precision_at_100")
    }
    detector.metrics |= {
        "roc_auc": float(by.loc[chosen, "roc_auc"]),
        "pr_auc": float(by.loc[chosen, "pr_auc"]),
        "baseline_pr_auc": float(by.loc["baseline", "pr_auc"]),
        "baseline_roc_auc": float(by.loc["baseline", "roc_auc"]),
        "label_delay_days": delay.total_seconds() / 86_400,
    }
    if chosen != "robust_z":
        known = (feats["created_at"] < feats["created_at"].max() - delay).to_numpy()
        final = _fit_models(x[known], labels[known], seed, [chosen])[chosen]
        detector.method = chosen
        detector.supervised = final
        detector.supervised_features = cols
        detector.medians, detector.scales = robust_stats(feats[known])
    return detector
