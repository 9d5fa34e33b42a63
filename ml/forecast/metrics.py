"""Forecast accuracy measures: sMAPE (scale-free, bounded) and MASE (relative to seasonal naive)."""

from __future__ import annotations

import numpy as np


def smape(actual: np.ndarray, pred: np.ndarray) -> float:
    """Symmetric MAPE in [0, 2]; a pair of zeros counts as a perfect forecast."""
    actual = np.asarray(actual, dtype=float)
    pred = np.asarray(pred, dtype=float)
    denom = np.abs(actual) + np.abs(pred)
    safe = np.where(denom == 0, 1.0, denom)
    ratio = np.where(denom == 0, 0.0, 2.0 * np.abs(actual - pred) / safe)
    return float(np.mean(ratio))


def mase(actual: np.ndarray, pred: np.ndarray, history: np.ndarray, season: int) -> float:
    """Mean absolute error scaled by the in-sample seasonal-naive error of ``history``.

    Falls back to the lag-1 naive scale when the seasonal differences are all zero; a
    constant history has no scale, so the result is NaN rather than a misleading number.
    """
    history = np.asarray(history, dtype=float)
    mae = float(np.mean(np.abs(np.asarray(actual, float) - np.asarray(pred, float))))
    scale = 0.0
    if len(history) > season:
        scale = float(np.mean(np.abs(history[season:] - history[:-season])))
    if scale == 0.0 and len(history) > 1:
        scale = float(np.mean(np.abs(np.diff(history))))
    if scale == 0.0:
        return float("nan")
    return mae / scale
