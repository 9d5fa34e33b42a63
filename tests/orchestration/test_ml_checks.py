"""The baseline rule behind every model check: pass, fail, warn on tiny or undefined holdouts."""

import dagster as dg

from orchestration.defs.ml import checks


def _check(model: float, baseline: float, **kwargs) -> dg.AssetCheckResult:
    return checks.beats_baseline("c", "a", "roc_auc", model, "heuristic", baseline, **kwargs)


def test_model_at_least_as_good_as_baseline_passes():
    result = _check(0.81, 0.70, class_counts=(30, 300))
    assert result.passed and result.severity == dg.AssetCheckSeverity.ERROR
    assert result.metadata["margin"].value == 0.81 - 0.70


def test_model_losing_to_baseline_fails_with_error():
    result = _check(0.64, 0.67, class_counts=(30, 300))
    assert not result.passed and result.severity == dg.AssetCheckSeverity.ERROR
    assert "0.6400 vs heuristic 0.6700" in result.description


def test_lower_is_better_metrics_compare_the_other_way():
    assert _check(0.9, 2.3, higher_is_better=False).passed
    assert not _check(2.4, 2.3, higher_is_better=False).passed


def test_tiny_holdout_only_warns():
    result = _check(0.2, 0.9, class_counts=(3, 200))
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert "too small" in result.description


def test_undefined_metric_fails():
    result = _check(float("nan"), 0.7)
    assert not result.passed and "undefined" in result.description
