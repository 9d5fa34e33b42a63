"""Population stability index (PSI) for feature and score drift between two samples."""

from __future__ import annotations

import numpy as np
import pandas as pd

EPSILON = 1e-4  # floor for empty bins so log ratios stay finite


class DriftInputError(ValueError):
    """The samples cannot be compared; the message says why."""


def population_stability_index(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> float:
    """PSI of ``actual`` against ``expected`` using quantile bins of ``expected``.

    Rule of thumb: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 significant shift.
    Values outside the expected range fall into the outer bins; NaNs are rejected.
    """
    exp = np.asarray(expected, dtype=float).ravel()
    act = np.asarray(actual, dtype=float).ravel()
    if bins < 2:
        raise DriftInputError(f"bins must be at least 2, got {bins}")
    if exp.size == 0 or act.size == 0:
        raise DriftInputError("both samples must be non-empty")
    if np.isnan(exp).any() or np.isnan(act).any():
        raise DriftInputError("samples contain NaN; impute or drop them first")
    edges = np.unique(np.quantile(exp, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        # A constant expected sample: one bin for "equal", one for "different".
        e_share = np.array([1.0, 0.0])
        a_share = np.array([np.mean(act == exp[0]), np.mean(act != exp[0])])
    else:
        inner = edges[1:-1]  # outer edges are open so out-of-range values still count
        e_share = np.bincount(np.searchsorted(inner, exp, side="right"), minlength=len(inner) + 1)
        a_share = np.bincount(np.searchsorted(inner, act, side="right"), minlength=len(inner) + 1)
        e_share = e_share / exp.size
        a_share = a_share / act.size
    e_share = np.maximum(e_share, EPSILON)
    a_share = np.maximum(a_share, EPSILON)
    return float(np.sum((a_share - e_share) * np.log(a_share / e_share)))


def feature_drift(
    reference: pd.DataFrame, current: pd.DataFrame, features: list[str], bins: int = 10
) -> pd.DataFrame:
    """PSI per feature of ``current`` against ``reference`` (missing values become 0, the
    "no event" value of counts and day gaps, in both samples alike), largest first."""
    missing = [f for f in features if f not in reference.columns or f not in current.columns]
    if missing:
        raise DriftInputError(f"features {missing} are not in both samples")
    rows = []
    for name in features:
        ref = pd.to_numeric(reference[name], errors="coerce").fillna(0.0).to_numpy(dtype=float)
        cur = pd.to_numeric(current[name], errors="coerce").fillna(0.0).to_numpy(dtype=float)
        rows.append({"feature": name, "psi": population_stability_index(ref, cur, bins)})
    out = pd.DataFrame(rows, columns=["feature", "psi"])
    return out.sort_values("psi", ascending=False, kind="mergesort").reset_index(drop=True)
