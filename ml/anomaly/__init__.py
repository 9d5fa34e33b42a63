"""Transaction anomaly detection (supervised on delay-respecting labels, robust z-scores
without them) and daily revenue anomalies against the forecast."""

from ml.anomaly.daily import daily_anomalies
from ml.anomaly.detector import Detector, precision_at_k
from ml.anomaly.features import TransactionInputError, transaction_features
from ml.anomaly.train import fit_detector

__all__ = [
    "Detector",
    "TransactionInputError",
    "daily_anomalies",
    "fit_detector",
    "precision_at_k",
    "transaction_features",
]
