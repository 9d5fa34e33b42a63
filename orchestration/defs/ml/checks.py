"""Model-quality checks: each training asset reports, on its own time-based holdout, whether
the model beats its simple baseline. They are emitted by the training assets themselves (the
holdout lives only in that run), so here are the specs and the one rule that builds results."""

from __future__ import annotations

import math

import dagster as dg
import numpy as np
import pandas as pd

from ml.anomaly.registry import FittedDetector
from ml.churn.train import ChurnModel
from ml.forecast.revenue import RevenueForecasts
from ml.retry import LABEL as RETRY_LABEL
from ml.retry import RetryModel

FORECAST_CHECK = "revenue_forecast_beats_seasonal_naive"
CHURN_CHECK = "churn_model_beats_baseline"
CHURN_LOGREG_CHECK = "churn_model_beats_logistic_regression"
ANOMALY_CHECK = "transaction_anomaly_model_beats_baseline"
RETRY_CHECK = "retry_timing_model_beats_baseline"
# Below this many examples of either class, a holdout ROC-AUC is mostly noise: warn instead
# of passing or failing on a coin flip.
MIN_CLASS_COUNT = 10
SPECS = {
    FORECAST_CHECK: (
        "revenue_forecast",
        "Each chosen forecaster's backtest MASE is no worse than seasonal naive's.",
    ),
    CHURN_CHECK: (
        "churn_model",
        "Holdout ROC-AUC of the calibrated churn model is no worse than the recency-frequency "
        "heuristic's.",
    ),
    CHURN_LOGREG_CHECK: (
        "churn_model",
        "Holdout ROC-AUC of the calibrated churn model is no worse than a plain logistic "
        "regression's (its promotion baseline).",
    ),
    ANOMALY_CHECK: (
        "transaction_anomaly_model",
        "On the test window after the label delay, the detector's average precision against "
        "fraud disputes is no worse than the amount-vs-usual baseline's (warns without labels).",
    ),
    RETRY_CHECK: (
        "retry_timing_model",
        "Holdout ROC-AUC of the retry model is no worse than the per-decline-code rate's.",
    ),
}


def spec_of(name: str) -> dg.AssetCheckSpec:
    asset, description = SPECS[name]
    return dg.AssetCheckSpec(name=name, asset=asset, description=description)


def beats_baseline(
    name: str,
    asset: str,
    metric: str,
    model_value: float,
    baseline_name: str,
    baseline_value: float,
    higher_is_better: bool = True,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
    class_counts: tuple[int, int] | None = None,
) -> dg.AssetCheckResult:
    """Pass when the model is at least as good as the baseline on the holdout; an undefined
    metric (e.g. one class only in the holdout) fails, since nothing was shown. With
    ``class_counts`` (positives, negatives) below MIN_CLASS_COUNT the check only warns."""
    if class_counts is not None and min(class_counts) < MIN_CLASS_COUNT:
        return not_evaluated(
            name,
            asset,
            f"holdout too small to judge ({class_counts[0]} positives, {class_counts[1]} "
            f"negatives; need {MIN_CLASS_COUNT} of each)",
        )
    defined = math.isfinite(model_value) and math.isfinite(baseline_value)
    margin = (model_value - baseline_value) if higher_is_better else (baseline_value - model_value)
    passed = bool(defined and margin >= 0)
    return dg.AssetCheckResult(
        check_name=name,
        asset_key=asset,
        passed=passed,
        severity=severity,
        description=(
            f"{metric}: model {model_value:.4f} vs {baseline_name} {baseline_value:.4f}"
            if defined
            else f"{metric} is undefined on the holdout; the model could not be judged"
        ),
        metadata={
            "metric": metric,
            "model": float(model_value) if defined else None,
            "baseline": baseline_name,
            "baseline_value": float(baseline_value) if defined else None,
            "margin": float(margin) if defined else None,
        },
    )


def not_evaluated(name: str, asset: str, reason: str) -> dg.AssetCheckResult:
    """A warning, not a pass: the model could not be compared with its baseline."""
    return dg.AssetCheckResult(
        check_name=name,
        asset_key=asset,
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"not evaluated: {reason}",
        metadata={"reason": reason},
    )


def skipped(reason: str, names: list[str]) -> dg.MaterializeResult:
    """A training asset that could not train: every check warns with the reason."""
    return dg.MaterializeResult(
        metadata={"trained": False, "reason": reason},
        check_results=[not_evaluated(n, SPECS[n][0], reason) for n in names],
    )


def _counts(labels: np.ndarray) -> tuple[int, int]:
    positives = int(np.sum(labels))
    return positives, len(labels) - positives


def forecast_check(result: RevenueForecasts) -> dg.AssetCheckResult:
    name, chosen, base = result.worst_vs_baseline()
    return beats_baseline(
        FORECAST_CHECK, "revenue_forecast", f"backtest MASE ({name})", chosen,
        "seasonal_naive", base, higher_is_better=False,
    )  # fmt: skip


def churn_checks(model: ChurnModel) -> list[dg.AssetCheckResult]:
    m, counts = model.metrics, _counts(model.holdout_labels)
    return [
        beats_baseline(
            CHURN_CHECK, "churn_model", "holdout ROC-AUC", m["roc_auc"], "recency_frequency",
            m.get("recency_frequency_roc_auc", float("nan")), class_counts=counts,
        ),
        beats_baseline(
            CHURN_LOGREG_CHECK, "churn_model", "holdout ROC-AUC", m["roc_auc"],
            "logistic_regression", m["logistic_regression_roc_auc"], class_counts=counts,
        ),
    ]  # fmt: skip


def anomaly_check(fitted: FittedDetector) -> dg.AssetCheckResult:
    if not fitted.labelled:
        return not_evaluated(
            ANOMALY_CHECK, "transaction_anomaly_model",
            f"too few fraud labels to evaluate; the detector scores unsupervised ({fitted.reason})",
        )  # fmt: skip
    ev, m = fitted.detector.evaluation, fitted.detector.metrics
    positives = int(ev["positives"].iloc[0])
    return beats_baseline(
        ANOMALY_CHECK, "transaction_anomaly_model", "test-window average precision",
        m["pr_auc"], "baseline_amount_ratio", m["baseline_pr_auc"],
        class_counts=(positives, int(ev["rows"].iloc[0]) - positives),
    )  # fmt: skip


def retry_check(model: RetryModel, holdout: pd.DataFrame) -> dg.AssetCheckResult:
    m = model.metrics
    return beats_baseline(
        RETRY_CHECK, "retry_timing_model", "holdout ROC-AUC", m["hgb_roc_auc"],
        "decline_code_rate", m["decline_code_rate_roc_auc"],
        class_counts=_counts(holdout[RETRY_LABEL].astype(int).to_numpy()),
    )  # fmt: skip
