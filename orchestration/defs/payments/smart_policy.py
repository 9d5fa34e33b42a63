"""The `smart` retry policy for the payments jobs: the registered retry-timing model
(`models:/retry_timing@champion`) as a scorer, or exponential backoff when there is none."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from billing_jobs.payments.retries import SmartPolicy
from orchestration.lib.resources import MlflowResource, ModelUnavailable

RETRY_MODEL_NAME = "retry_timing"  # ml.retry.REGISTERED_NAME; kept here so a fallback needs no ml
FALLBACK = "fallback"


class ModelRetryScorer:
    """Adapts a retry-timing model to `SmartPolicy`'s scorer contract.

    The policy describes each candidate retry time; the model is trained on the failure's local
    hour and day of month (`ml.retry` input schema), so those are derived here from the
    failure instant in the business time zone.
    """

    def __init__(self, model: Any, timezone: str) -> None:
        self.model = model  # anything with predict_success(DataFrame) -> array (ml.retry)
        self.tz = ZoneInfo(timezone)

    def _row(self, features: Mapping[str, Any], offset_hours: float) -> dict[str, Any]:
        failed: datetime = features["last_failed_at"]
        local = failed.astimezone(self.tz)
        return {
            "decline_code": features.get("decline_code") or "unknown",
            "method": features.get("method") or "unknown",
            "issuer": features.get("issuer") or "unknown",
            "amount_minor": int(features["amount_minor"]),
            "day_of_month": local.day,
            "hour": local.hour,
            "attempt_number": int(features["attempt_number"]),
            "offset_hours": float(offset_hours),
        }

    def score_batch(
        self, rows: Sequence[Mapping[str, Any]], offsets_hours: Sequence[float]
    ) -> list[float]:
        import pandas as pd

        frame = pd.DataFrame([self._row(r, o) for r, o in zip(rows, offsets_hours, strict=True)])
        return [float(p) for p in self.model.predict_success(frame)]

    def __call__(self, features: Mapping[str, Any], offset_hours: float) -> float:
        return self.score_batch([features], [offset_hours])[0]


@dataclass(frozen=True)
class SmartChoice:
    """The smart policy a run uses and what it is based on, for logs and run metadata."""

    policy: SmartPolicy
    model: str  # "retry_timing v3" or "fallback"
    version: str | None
    note: str

    def metadata(self) -> dict[str, str]:
        return {"retry_model": self.model, "retry_model_note": self.note}


def _probe(scorer: ModelRetryScorer) -> None:
    """Score one made-up candidate, so a model that loads but cannot score (a schema change)
    falls back at the start of the run instead of failing halfway through it."""
    from datetime import UTC

    p = scorer(
        {"decline_code": "insufficient_funds", "amount_minor": 49_900, "attempt_number": 2,
         "last_failed_at": datetime(2025, 1, 1, tzinfo=UTC)},
        24.0,
    )  # fmt: skip
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"the retry model returned {p}, not a probability")


def smart_policy(mlflow: MlflowResource, timezone: str) -> SmartChoice:
    """`SmartPolicy` scored by the champion retry-timing model, or (no champion, or it cannot be
    loaded) a `SmartPolicy` without a scorer, which behaves exactly like exponential backoff."""
    try:
        version, pipeline = mlflow.load_champion_sklearn(RETRY_MODEL_NAME)
        from ml.retry import RetryModel

        scorer = ModelRetryScorer(RetryModel.from_pipeline(pipeline), timezone)
        _probe(scorer)
    except ModelUnavailable as e:
        return SmartChoice(SmartPolicy(), FALLBACK, None, f"exponential backoff: {e}")
    except Exception as e:  # any loading failure falls back: retries must not stop
        note = f"exponential backoff: loading models:/{RETRY_MODEL_NAME}@champion failed: {e!r}"
        return SmartChoice(SmartPolicy(), FALLBACK, None, note[:500])
    label = f"{RETRY_MODEL_NAME} v{version}"
    return SmartChoice(
        SmartPolicy(scorer=scorer, scorer_name=label),
        label,
        version,
        f"models:/{RETRY_MODEL_NAME}@champion is version {version}",
    )
