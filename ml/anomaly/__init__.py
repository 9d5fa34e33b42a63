"""Transaction anomaly detection and daily revenue anomalies against the forecast."""

from ml.anomaly.daily import daily_anomalies
from ml.anomaly.detector import Detector, fit_detector, precision_at_k
from ml.anomaly.features import TransactionInputError, transaction_features

__all__ = [
    "Detector",
    "TransactionInputError",
    "daily_anomalies",
    "fit_detector",
    "precision_at_k",
    "transaction_features",
]
