"""Retry timing: the success probability of a retry some hours after a failed payment."""

from ml.retry.registry import log_and_register
from ml.retry.train import (
    CATEGORICAL,
    DEFAULT_OFFSETS,
    LABEL,
    NUMERIC,
    REGISTERED_NAME,
    RetryModel,
    fit_retry_model,
    prepare,
)

__all__ = [
    "CATEGORICAL",
    "DEFAULT_OFFSETS",
    "LABEL",
    "NUMERIC",
    "REGISTERED_NAME",
    "RetryModel",
    "fit_retry_model",
    "log_and_register",
    "prepare",
]
