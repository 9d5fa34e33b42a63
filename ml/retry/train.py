"""Retry timing: probability that a retry ``offset_hours`` after a failed payment succeeds.

Input columns: ``decline_code, method, issuer, amount_minor, day_of_month, hour`` (of the
failure, Indian local time), ``attempt_number, offset_hours`` and label ``succeeded``;
optional ``failed_at`` for a time-based holdout. Billing gets a plain scorer via
:meth:`RetryModel.as_scorer`: ``(features: dict, offset_hours: float) -> float``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from ml.classify import TrainingInputError, binary_metrics, time_split

CATEGORICAL = ["decline_code", "method", "issuer"]
NUMERIC = ["amount_minor", "day_of_month", "hour", "attempt_number", "offset_hours"]
DERIVED = ["retry_hour", "retry_day_of_month"]
LABEL = "succeeded"
REGISTERED_NAME = "retry_timing"
DEFAULT_OFFSETS = (1.0, 3.0, 6.0, 12.0, 24.0, 48.0, 72.0, 96.0, 120.0, 168.0)


def prepare(df: pd.DataFrame) -> pd.DataFrame:
    """Validate and add the retry's own hour and day of month (salary days matter)."""
    frame = df.rename(columns={"amount": "amount_minor", "bank": "issuer"}).copy()
    missing = [c for c in CATEGORICAL + NUMERIC if c not in frame.columns]
    if missing:
        raise TrainingInputError(f"retry features are missing columns {missing}")
    for col in NUMERIC:
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    if frame[NUMERIC].isna().any().any():
        bad = frame[NUMERIC].columns[frame[NUMERIC].isna().any()].tolist()
        raise TrainingInputError(f"non-numeric or missing values in {bad}")
    if (frame["offset_hours"] < 0).any():
        raise TrainingInputError("offset_hours must be >= 0 (a retry cannot precede the failure)")
    if not frame["day_of_month"].between(1, 31).all() or not frame["hour"].between(0, 23).all():
        raise TrainingInputError("day_of_month must be 1..31 and hour 0..23")
    for col in CATEGORICAL:
        frame[col] = frame[col].astype("string").fillna("unknown").astype(object)
    elapsed = frame["hour"] + frame["offset_hours"]
    frame["retry_hour"] = np.mod(elapsed, 24.0)
    # Month lengths are unknown here; a 30-day wrap is close enough for salary-day effects.
    frame["retry_day_of_month"] = np.mod(frame["day_of_month"] - 1 + elapsed // 24, 30) + 1
    return frame[CATEGORICAL + NUMERIC + DERIVED]


def _pipeline(seed: int) -> Pipeline:
    encode = ColumnTransformer(
        [
            (
                "cat",
                OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan),
                CATEGORICAL,
            ),
            ("num", "passthrough", NUMERIC + DERIVED),
        ]
    )
    model = HistGradientBoostingClassifier(
        max_iter=200,
        learning_rate=0.05,
        max_leaf_nodes=31,
        categorical_features=list(range(len(CATEGORICAL))),
        random_state=seed,
    )
    return Pipeline([("encode", encode), ("model", model)])


@dataclass
class RetryModel:
    pipeline: Pipeline
    comparison: pd.DataFrame
    metrics: dict[str, float]
    holdout: str
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_pipeline(cls, pipeline: Pipeline) -> RetryModel:
        """Wrap a pipeline loaded from the registry (``models:/retry_timing@champion``)."""
        return cls(pipeline=pipeline, comparison=pd.DataFrame(), metrics={}, holdout="")

    def predict_success(self, features: pd.DataFrame) -> np.ndarray:
        """Success probability per row (each row carries its own ``offset_hours``)."""
        return self.pipeline.predict_proba(prepare(features))[:, 1]

    def best_offset(
        self, features: Mapping[str, Any], candidate_offsets: Iterable[float] = DEFAULT_OFFSETS
    ) -> tuple[float, float]:
        """The offset (hours) with the highest predicted success, and that probability."""
        offsets = [float(o) for o in candidate_offsets]
        if not offsets:
            raise TrainingInputError("candidate_offsets is empty")
        rows = pd.DataFrame([{**features, "offset_hours": o} for o in offsets])
        probs = self.predict_success(rows)
        best = int(np.argmax(probs))
        return offsets[best], float(probs[best])

    def as_scorer(self) -> Callable[[Mapping[str, Any], float], float]:
        """A plain ``(features, offset_hours) -> probability`` callable for billing."""

        def score(features: Mapping[str, Any], offset_hours: float) -> float:
            row = pd.DataFrame([{**features, "offset_hours": float(offset_hours)}])
            return float(self.predict_success(row)[0])

        return score


def fit_retry_model(
    df: pd.DataFrame,
    time_col: str | None = "failed_at",
    holdout_fraction: float = 0.25,
    seed: int = 0,
) -> RetryModel:
    """Train on earlier failures; compare with a per-decline-code success-rate baseline on the
    latest ``holdout_fraction`` (by ``time_col`` when present)."""
    if LABEL not in df.columns:
        raise TrainingInputError(f"label column {LABEL!r} is missing")
    y = pd.to_numeric(df[LABEL], errors="coerce")
    if y.isna().any() or not y.isin([0, 1]).all():
        raise TrainingInputError(f"{LABEL} must be 0/1 for every row")
    y = y.astype(int).to_numpy()
    x = prepare(df)
    holdout, window = time_split(
        df, time_col if time_col in df.columns else None, holdout_fraction, seed
    )
    train = ~holdout
    if len(np.unique(y[train])) < 2 or len(np.unique(y[holdout])) < 2:
        raise TrainingInputError("both windows need successful and failed retries")
    pipeline = _pipeline(seed).fit(x[train], y[train])
    model_p = pipeline.predict_proba(x[holdout])[:, 1]
    # Baseline: the training success rate of each decline code (what a static schedule knows).
    rates = pd.Series(y[train]).groupby(x.loc[train, "decline_code"].to_numpy()).mean()
    base_p = x.loc[holdout, "decline_code"].map(rates).fillna(y[train].mean()).to_numpy()
    comparison = pd.DataFrame(
        [
            {"model": "hgb", **binary_metrics(y[holdout], model_p)},
            {"model": "decline_code_rate", **binary_metrics(y[holdout], base_p)},
        ]
    )
    by = comparison.set_index("model")
    metrics = {
        f"{m}_{k}": float(by.loc[m, k]) for m in by.index for k in ("roc_auc", "brier", "pr_auc")
    }
    return RetryModel(
        pipeline=pipeline,
        comparison=comparison,
        metrics=metrics,
        holdout=window,
        params={"max_iter": 200, "learning_rate": 0.05, "max_leaf_nodes": 31},
    )
