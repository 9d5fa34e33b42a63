"""The warehouse side of the transaction detector: the mart in the detector's schema, the
fit with or without fraud labels, and logging/registering it as ``transaction_anomaly``."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sklearn.metrics import average_precision_score

from ml import registry
from ml.anomaly.detector import Detector
from ml.anomaly.features import TransactionInputError
from ml.anomaly.train import fit_detector
from ml.promotion import Published, register_and_promote, register_unevaluated
from ml.pyfunc import DetectorPyfunc

REGISTERED_NAME = "transaction_anomaly"
LABEL = "label"
# Disputes reach the gateway 10-40 days after the payment: a fraud label is known by then.
DEFAULT_LABEL_DELAY_DAYS = 45.0
DESCRIPTION = (
    "Anomaly score per transaction (marts.ml_transactions rows in, transaction_id and score "
    "out; pass 30 days plus the label delay of history). Supervised on fraud disputes known "
    "after the label delay when there are enough, robust z-scores otherwise."
)


def detector_input(transactions: pd.DataFrame, with_labels: bool) -> pd.DataFrame:
    """``marts.ml_transactions`` in the detector's documented schema (amounts stay integer
    minor units; the label is the fraud dispute, the only fraud label the platform learns)."""
    frame = transactions.rename(
        columns={"amount_minor": "amount", "plan_amount_minor": "plan_amount"}
    )
    cols = ["transaction_id", "customer_id", "instrument_id", "amount", "created_at", "plan_amount"]
    out = frame[cols].copy()
    if with_labels:
        out[LABEL] = frame["fraud_disputed"].astype(int)
    return out


@dataclass(frozen=True)
class FittedDetector:
    detector: Detector
    labelled: bool
    reason: str  # why it is unsupervised, when it is


def fit_transactions(tx: pd.DataFrame, label_delay_days: float) -> FittedDetector:
    """Supervised on the fraud disputes when they suffice, unsupervised otherwise."""
    delay = pd.Timedelta(days=label_delay_days)
    try:
        detector = fit_detector(detector_input(tx, True), LABEL, delay, extra_features=[])
        return FittedDetector(detector, True, "")
    except TransactionInputError as exc:
        detector = fit_detector(detector_input(tx, False), LABEL, delay, extra_features=[])
        return FittedDetector(detector, False, str(exc))


def champion_scorer(tx: pd.DataFrame, detector: Detector):
    """Average precision of a loaded champion on the challenger's test window."""
    start = pd.Timestamp(detector.evaluation["holdout_start"].iloc[0])

    def score(champion) -> float:
        scores = champion.predict(detector_input(tx, with_labels=True)).set_index("transaction_id")
        later = (pd.to_datetime(tx["created_at"], utc=True) >= start).to_numpy()
        ids = tx.loc[later, "transaction_id"].astype(str)
        labels = tx.loc[later, "fraud_disputed"].astype(int)
        return float(average_precision_score(labels, scores.loc[ids, "score"].to_numpy()))

    return score


def publish(fitted: FittedDetector, tx: pd.DataFrame) -> Published:
    """Log the detector and register it; promote only if it beats its baseline (and the
    champion) on the same later window; an unlabelled fit is registered unevaluated."""
    detector = fitted.detector
    registry.log_params(
        {"method": detector.method, "labelled": fitted.labelled, "rows": len(tx)}
        | {"label_delay_days": detector.label_delay.total_seconds() / 86_400}
    )
    registry.log_metrics(detector.metrics)
    if not detector.evaluation.empty:
        registry.log_table(detector.evaluation.astype({"holdout_start": str}), "evaluation.csv")
    example = detector_input(tx.head(5), with_labels=True)
    wrapped = DetectorPyfunc(detector)
    uri = registry.log_pyfunc_model(
        wrapped,
        input_example=example,
        signature=registry.signature_for(example, wrapped.predict(None, example)),
    )
    if not fitted.labelled:
        window = f"created_at {tx['created_at'].min()} .. {tx['created_at'].max()}"
        version, promoted, reason = register_unevaluated(uri, REGISTERED_NAME, window, DESCRIPTION)
        return Published(version, promoted, reason, uri)
    m = detector.metrics
    version, decision = register_and_promote(
        uri,
        REGISTERED_NAME,
        "pr_auc",
        m["pr_auc"],
        True,
        str(detector.evaluation["holdout_start"].iloc[0]),
        champion_scorer(tx, detector),
        baseline=("baseline_amount_ratio", m["baseline_pr_auc"]),
        description=DESCRIPTION,
    )
    return Published(version, decision.promoted, decision.reason, uri)
