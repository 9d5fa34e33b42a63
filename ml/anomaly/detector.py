"""The fitted transaction detector: a supervised model (random forest, gradient boosting or
their average) when labels exist, robust one-sided z-scores otherwise, and the reasons."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ml.anomaly.features import DEFAULT_LABEL_DELAY, transaction_features

# Direction in which a feature is suspicious: +1 high is risky, -1 low is risky.
RISK_DIRECTIONS: dict[str, int] = {
    "amount_vs_plan": 1,
    "amount_vs_cust_mean": 1,
    "amount_z_cust": 1,
    "cust_count_1d": 1,
    "cust_count_7d": 1,
    "cust_log_sum_1d": 1,
    "instrument_count_last_1d": 1,
    "terminal_count_last_1d": 1,
    "new_instrument": 1,
    "night": 1,
    "log_days_since_prev": -1,
}
# Ratios are heavy-tailed: score them on a log scale so a 10x charge is not 10x a 2x one.
LOG_FEATURES = ("amount_vs_plan", "amount_vs_cust_mean")
MAX_CONTRIBUTION = 8.0


def transform(name: str, x: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(x, 1e-6)) if name in LOG_FEATURES else x


def robust_stats(feats: pd.DataFrame) -> tuple[dict[str, float], dict[str, float]]:
    """Median and MAD-based scale of each risk feature present."""
    medians, scales = {}, {}
    for name in RISK_DIRECTIONS:
        if name not in feats.columns:
            continue
        x = transform(name, feats[name].to_numpy(dtype=float))
        med = float(np.nanmedian(x))
        mad = 1.4826 * float(np.nanmedian(np.abs(x - med)))
        # Binary and mostly-constant features have MAD 0; fall back to the std, then 1.
        scale = mad if mad > 1e-9 else float(np.nanstd(x))
        medians[name], scales[name] = med, scale if scale > 1e-9 else 1.0
    return medians, scales


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


@dataclass
class Detector:
    """Fitted detector. ``score`` returns ``transaction_id, score, top_reasons``."""

    medians: dict[str, float]
    scales: dict[str, float]
    method: str = "robust_z"
    supervised: object | None = None  # a fitted classifier with predict_proba
    supervised_features: list[str] = field(default_factory=list)
    label_col: str | None = None
    label_delay: pd.Timedelta = DEFAULT_LABEL_DELAY
    extra: list[str] = field(default_factory=list)
    evaluation: pd.DataFrame = field(default_factory=pd.DataFrame)
    metrics: dict[str, float] = field(default_factory=dict)

    def features(self, df: pd.DataFrame) -> pd.DataFrame:
        label = self.label_col if self.label_col in df.columns else None
        return transaction_features(df, label, self.label_delay, self.extra)

    def contributions(self, feats: pd.DataFrame) -> pd.DataFrame:
        """Per-feature one-sided robust z-scores, capped so no single feature dominates."""
        out = {}
        for name, direction in RISK_DIRECTIONS.items():
            if name not in feats.columns or name not in self.medians:
                continue
            x = transform(name, feats[name].to_numpy(dtype=float))
            z = direction * (x - self.medians[name]) / self.scales[name]
            out[name] = np.clip(np.nan_to_num(z, nan=0.0), 0.0, MAX_CONTRIBUTION)
        return pd.DataFrame(out, index=feats.index)

    def raw_scores(self, feats: pd.DataFrame) -> np.ndarray:
        if self.method != "robust_z" and self.supervised is not None:
            x = feats.reindex(columns=self.supervised_features)
            return self.supervised.predict_proba(x.to_numpy(dtype=float))[:, 1]
        return self.contributions(feats).sum(axis=1).to_numpy()

    def score(self, df: pd.DataFrame, since: pd.Timestamp | None = None) -> pd.DataFrame:
        """Score transactions. Pass the history the windows need (30 days plus the label
        delay before ``since``, with the labels known so far); only rows at or after
        ``since`` are returned."""
        feats = self.features(df)
        contrib = self.contributions(feats)
        result = pd.DataFrame(
            {
                "transaction_id": feats["transaction_id"],
                "score": self.raw_scores(feats),
                "top_reasons": _top_reasons(contrib, feats),
            }
        )
        if since is not None:
            result = result[feats["created_at"] >= pd.Timestamp(since)]
        return result.reset_index(drop=True)


def precision_at_k(labels: np.ndarray, scores: np.ndarray, k: int = 100) -> float:
    k = min(k, len(scores))
    top = np.argsort(-scores, kind="mergesort")[:k]
    return float(np.mean(labels[top])) if k else float("nan")
