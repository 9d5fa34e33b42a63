"""Churn model: choose by cross-validation on the training window between a regularized
logistic regression (scaled numbers + one-hot categories), gradient boosting with native
categorical support, and their average; calibrate the winner; compare it on a later (or
held-out) window with a plain logistic regression and a recency-frequency heuristic.

Any customer table with a 0/1 (or yes/no) label column works: numeric columns, categorical
columns, missing values and numbers stored as text (``"29.85"``) are read by
:mod:`ml.churn.features`. On the warehouse it is ``marts.customer_features_monthly`` via
:mod:`ml.churn.panel` (``customer_id``, ``snapshot_at``, label ``churned_in_horizon``,
tenure, MRR in integer minor units, failed payments, usage, support tickets, ...).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, VotingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from ml.churn.evaluate import comparison_table, recency_frequency_score
from ml.churn.features import FeatureSpec, binary_labels, infer_spec
from ml.classify import TrainingInputError, time_split

CV_FOLDS = 5
CANDIDATES = ("logistic_regression", "gradient_boosting", "average")


def logistic_pipeline(spec: FeatureSpec, c: float = 1.0) -> Pipeline:
    """Median-imputed (with missing indicators), standardized numbers and one-hot categories
    into an L2-regularized logistic regression."""
    steps = []
    if spec.numeric:
        numbers = make_pipeline(
            SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
            StandardScaler(),
        )
        steps.append(("num", numbers, spec.numeric))
    if spec.categorical:
        steps.append(
            (
                "cat",
                OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=5),
                spec.categorical,
            )
        )
    encode = ColumnTransformer(steps, sparse_threshold=0.0)
    return Pipeline([("encode", encode), ("model", LogisticRegression(C=c, max_iter=2000))])


def boosting_pipeline(spec: FeatureSpec, seed: int) -> Pipeline:
    """Gradient boosting on raw numbers (missing values handled natively) and ordinal-coded
    categories declared categorical, with early stopping on an inner validation split."""
    steps = []
    if spec.categorical:
        codes = OrdinalEncoder(
            handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=np.nan
        )
        steps.append(("cat", codes, spec.categorical))
    if spec.numeric:
        steps.append(("num", "passthrough", spec.numeric))
    encode = ColumnTransformer(steps, sparse_threshold=0.0)
    model = HistGradientBoostingClassifier(
        learning_rate=0.05,
        max_iter=400,
        max_leaf_nodes=15,
        min_samples_leaf=40,
        l2_regularization=1.0,
        categorical_features=list(range(len(spec.categorical))) or None,
        early_stopping=True,
        validation_fraction=0.15,
        n_iter_no_change=30,
        random_state=seed,
    )
    return Pipeline([("encode", encode), ("model", model)])


def candidate(name: str, spec: FeatureSpec, seed: int) -> BaseEstimator:
    if name == "logistic_regression":
        return logistic_pipeline(spec)
    if name == "gradient_boosting":
        return boosting_pipeline(spec, seed)
    if name == "average":
        return VotingClassifier(
            [("lr", logistic_pipeline(spec)), ("gb", boosting_pipeline(spec, seed))],
            voting="soft",
        )
    raise TrainingInputError(f"unknown churn candidate {name!r}; choose from {CANDIDATES}")


def cross_validate(
    x: pd.DataFrame, y: np.ndarray, spec: FeatureSpec, seed: int, folds: int = CV_FOLDS
) -> pd.DataFrame:
    """ROC-AUC of every candidate on stratified folds of the training window only."""
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    rows = []
    for fold, (fit_idx, val_idx) in enumerate(splitter.split(x, y)):
        fitted = {}
        for name in ("logistic_regression", "gradient_boosting"):
            est = candidate(name, spec, seed).fit(x.iloc[fit_idx], y[fit_idx])
            fitted[name] = est.predict_proba(x.iloc[val_idx])[:, 1]
        # The average is exactly the soft vote of the two fitted above: no third fit needed.
        fitted["average"] = (fitted["logistic_regression"] + fitted["gradient_boosting"]) / 2
        for name, p in fitted.items():
            rows.append({"candidate": name, "fold": fold, "roc_auc": roc_auc_score(y[val_idx], p)})
    return pd.DataFrame(rows)


def _shown(value: object) -> str:
    # A missing day gap means "never happened" (e.g. no successful payment yet).
    if isinstance(value, float):
        return "never" if value != value else f"{value:.4g}"
    return str(value)


@dataclass
class ChurnModel:
    """Calibrated churn classifier with its cross-validation and holdout comparison tables."""

    model: CalibratedClassifierCV
    spec: FeatureSpec
    chosen: str
    reference: dict[str, object]
    comparison: pd.DataFrame
    cv: pd.DataFrame
    metrics: dict[str, float]
    holdout: str
    params: dict[str, object] = field(default_factory=dict)
    # Holdout labels and each compared model's scores, for curves and champion comparisons.
    holdout_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    holdout_scores: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def features(self) -> list[str]:
        return self.spec.columns

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        """Probability of churn per row."""
        return self.model.predict_proba(self.spec.frame(df))[:, 1]

    def explain(self, df: pd.DataFrame, k: int = 3) -> pd.DataFrame:
        """Top reasons per row: features whose value, reset to the training median (or most
        common category), lowers the churn probability most (a model-agnostic what-if)."""
        x = self.spec.frame(df)
        base = self.model.predict_proba(x)[:, 1]
        cols = self.spec.columns
        effects = np.zeros((len(x), len(cols)))
        for j, col in enumerate(cols):
            changed = x.copy()
            changed[col] = self.reference[col]
            effects[:, j] = base - self.model.predict_proba(changed)[:, 1]
        order = np.argsort(-effects, axis=1)[:, :k]
        reasons = []
        for i in range(len(x)):
            parts = [
                f"{cols[j]}={_shown(x.iat[i, j])} (+{effects[i, j]:.3f})"
                for j in order[i]
                if effects[i, j] > 0.005  # ignore rounding-level effects
            ]
            reasons.append("; ".join(parts))
        out = pd.DataFrame({"churn_probability": base, "top_reasons": reasons}, index=df.index)
        if "customer_id" in df.columns:
            out.insert(0, "customer_id", df["customer_id"].to_numpy())
        return out.reset_index(drop=True)


def _calibrated(estimator: BaseEstimator, y: np.ndarray, seed: int) -> CalibratedClassifierCV:
    # Isotonic needs plenty of positives to be smooth; Platt scaling is safer below that.
    method = "isotonic" if y.sum() >= 1_000 else "sigmoid"
    folds = StratifiedKFold(n_splits=CV_FOLDS, shuffle=True, random_state=seed)
    return CalibratedClassifierCV(estimator, method=method, cv=folds)


def _reference(x: pd.DataFrame, spec: FeatureSpec) -> dict[str, object]:
    ref: dict[str, object] = {c: float(np.nanmedian(x[c])) for c in spec.numeric}
    ref.update({c: x[c].mode().iloc[0] for c in spec.categorical})
    return ref


def fit_churn_model(
    df: pd.DataFrame,
    label_col: str,
    time_col: str | None = None,
    features: list[str] | None = None,
    holdout_fraction: float = 0.25,
    seed: int = 0,
) -> ChurnModel:
    """Choose, calibrate and judge a churn model on ``df``.

    With ``time_col`` the latest ``holdout_fraction`` of time is the holdout; without it a
    seeded random share. The candidates are compared by stratified cross-validation inside
    the training rows only; the winner is calibrated on the training rows and scored once
    on the holdout, next to a plain logistic regression and (when the columns exist) the
    recency-frequency heuristic. The returned model is the one the holdout judged.
    """
    if label_col not in df.columns:
        raise TrainingInputError(f"label column {label_col!r} is not in the table")
    y = binary_labels(df[label_col], label_col)
    excluded = {label_col} | ({time_col} if time_col else set())
    holdout, window = time_split(df, time_col, holdout_fraction, seed)
    train = ~holdout
    for name, mask in (("training", train), ("holdout", holdout)):
        if len(np.unique(y[mask])) < 2 or min(y[mask].sum(), (1 - y[mask]).sum()) < 5:
            raise TrainingInputError(f"the {name} window needs at least 5 churners and 5 stayers")
    spec = infer_spec(df[train], excluded, features)
    x = spec.frame(df)
    x_train, y_train = x[train], y[train]
    folds = int(min(CV_FOLDS, y_train.sum(), (1 - y_train).sum()))
    cv = cross_validate(x_train, y_train, spec, seed, folds=max(2, folds))
    by = cv.groupby("candidate")["roc_auc"].mean()
    chosen = str(by.idxmax())
    model = _calibrated(candidate(chosen, spec, seed), y_train, seed).fit(x_train, y_train)
    logreg = logistic_pipeline(spec).fit(x_train, y_train)
    scores = {
        "chosen_calibrated": model.predict_proba(x[holdout])[:, 1],
        "logistic_regression": logreg.predict_proba(x[holdout])[:, 1],
    }
    # Without recency/frequency columns there is no heuristic; compare the two models only.
    with contextlib.suppress(TrainingInputError):
        scores["recency_frequency"] = recency_frequency_score(df[holdout])
    comparison = comparison_table(y[holdout], scores)
    metrics = {
        f"{m}_{k}": float(v)
        for m, row in comparison.set_index("model").iterrows()
        for k, v in row.items()
        if k in ("roc_auc", "pr_auc", "brier", "lift_at_10pct")
    }
    metrics |= {f"cv_{name}_roc_auc": float(v) for name, v in by.items()}
    metrics |= {
        "roc_auc": metrics["chosen_calibrated_roc_auc"],
        "brier": metrics["chosen_calibrated_brier"],
        "baseline_roc_auc": metrics["logistic_regression_roc_auc"],
    }
    return ChurnModel(
        model=model,
        spec=spec,
        chosen=chosen,
        reference=_reference(x_train, spec),
        comparison=comparison,
        cv=cv,
        metrics=metrics,
        holdout=window,
        params={
            "chosen": chosen,
            "calibration": model.method,
            "cv_folds": max(2, folds),
            "numeric_features": len(spec.numeric),
            "categorical_features": len(spec.categorical),
        },
        holdout_labels=y[holdout],
        holdout_scores=scores,
    )
