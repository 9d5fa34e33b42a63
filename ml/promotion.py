"""Register a freshly trained model as the challenger and promote it only if it beats the
champion on the challenger's own time-based holdout (the champion is re-scored there)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlflow.exceptions import MlflowException

from ml import registry
from ml.registry import PromotionDecision


def beats(value: float, baseline: float, higher_is_better: bool) -> bool:
    """At least as good as the baseline (the same rule as the asset checks); an undefined
    number never beats anything."""
    if not (math.isfinite(value) and math.isfinite(baseline)):
        return False
    return value >= baseline if higher_is_better else value <= baseline


def register_and_promote(
    model_uri: str,
    name: str,
    metric: str,
    value: float,
    higher_is_better: bool,
    holdout_window: str,
    score_champion: Callable[[Any], float] | None = None,
    *,
    baseline: tuple[str, float],
    description: str | None = None,
) -> tuple[str, PromotionDecision]:
    """Register ``model_uri`` under ``name`` (alias challenger) and decide promotion.

    A model that does not beat its ``baseline`` (name, value on the same holdout) is
    registered but never promoted, not even as the first champion. Otherwise it must beat
    the champion: ``score_champion`` gets the loaded champion pyfunc model and returns its
    ``metric`` on the same holdout rows. A champion that cannot score them (e.g. its features
    no longer exist) counts as the worst possible value, so the challenger replaces it; the
    reason is recorded on the version. Returns the new version and the decision.
    """
    baseline_name, baseline_value = baseline
    metrics = {metric: value, f"baseline_{metric}": baseline_value}
    version = registry.register_model(
        model_uri, name, metrics, holdout_window, description=description
    )
    client = registry.MlflowClient()
    client.set_model_version_tag(name, version, "evaluated", "true")
    client.set_model_version_tag(name, version, "baseline", baseline_name)
    if not beats(float(value), float(baseline_value), higher_is_better):
        current = registry.champion_version(name)
        decision = PromotionDecision(
            name,
            version,
            None if current is None else str(current.version),
            metric,
            float(value),
            None,
            False,
            f"{metric} {value:.6g} does not beat its baseline {baseline_name} "
            f"{baseline_value:.6g} on the same holdout",
        )
        registry.tag_decision(client, decision)
        return version, decision
    champion_value: float | None = None
    current = registry.champion_version(name)
    if current is not None and score_champion is not None:
        try:
            champion_value = float(score_champion(registry.load_champion(name)))
        except (KeyError, ValueError, MlflowException, registry.RegistryError) as exc:
            # Why: a schema change must not pin an obsolete champion forever.
            champion_value = -math.inf if higher_is_better else math.inf
            client.set_model_version_tag(
                name, version, "champion_rescore_error", f"{type(exc).__name__}: {exc}"[:500]
            )
        if math.isnan(champion_value):
            champion_value = -math.inf if higher_is_better else math.inf
    decision = registry.promote_if_better(
        name,
        version,
        metric,
        higher_is_better,
        value,
        holdout_metric_of_champion=champion_value,
        holdout_window=holdout_window,
    )
    return version, decision


def register_unevaluated(
    model_uri: str, name: str, data_window: str, description: str | None = None
) -> tuple[str, bool, str]:
    """Register a model that has no labelled holdout to be judged on (an unsupervised
    detector without any fraud labels). It becomes champion only when there is none, or when
    the champion was not evaluated either (then the fit on newer data replaces it: there is
    no number to compare, and fresher statistics are the point of retraining). A champion
    that was evaluated on labels is never replaced by an unevaluated model.

    Returns the version, whether it was promoted and why.
    """
    version = registry.register_model(model_uri, name, {}, data_window, description=description)
    client = registry.MlflowClient()
    client.set_model_version_tag(name, version, "evaluated", "false")
    current = registry.champion_version(name)
    if current is None:
        promoted, reason = True, "no champion yet"
    elif (current.tags or {}).get("evaluated") == "false":
        promoted, reason = True, "champion was unevaluated too; newer data replaces it"
    else:
        promoted, reason = False, f"champion v{current.version} was evaluated on labels; kept"
    if promoted:
        client.set_registered_model_alias(name, registry.CHAMPION, version)
    client.set_model_version_tag(name, version, "promotion", "promoted" if promoted else "rejected")
    client.set_model_version_tag(name, version, "promotion_reason", reason)
    client.update_model_version(name, version, description=f"Unevaluated (no labels): {reason}.")
    return version, promoted, reason


@dataclass(frozen=True)
class Published:
    """What publishing a trained model produced: the run's registered version and the
    promotion decision (with its reason), for the asset's metadata."""

    version: str
    promoted: bool
    reason: str
    model_uri: str
    images: dict[str, bytes] = field(default_factory=dict)  # name -> PNG, e.g. ROC/PR curves


def png_array(png: bytes):
    """A PNG as the array ``mlflow.log_image`` takes."""
    import io

    import matplotlib.image as mpimg

    return mpimg.imread(io.BytesIO(png), format="png")
