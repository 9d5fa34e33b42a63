"""Model-quality checks: each training asset reports, on its own time-based holdout, whether
the model beats its simple baseline. They are emitted by the training assets themselves (the
holdout lives only in that run), so here are the specs and the one rule that builds results."""

from __future__ import annotations

import math

import dagster as dg

FORECAST_CHECK = "revenue_forecast_beats_seasonal_naive"
CHURN_CHECK = "churn_model_beats_baseline"
CHURN_LOGREG_CHECK = "churn_model_beats_logistic_regression"
ANOMALY_CHECK = "transaction_anomaly_model_beats_baseline"
RETRY_CHECK = "retry_timing_model_beats_baseline"
# Below this many examples of either class, a holdout ROC-AUC is mostly noise: warn instead
# of passing or failing on a coin flip.
MIN_CLASS_COUNT = 10


def spec(name: str, asset: str, description: str) -> dg.AssetCheckSpec:
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
