"""Population stability index: identical samples ~0, shifts grow, bad input rejected."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml.drift import DriftInputError, population_stability_index


def test_psi_levels() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(0, 1, 20_000)
    same = rng.normal(0, 1, 20_000)
    small = rng.normal(0.1, 1, 20_000)
    large = rng.normal(1.0, 1, 20_000)
    assert population_stability_index(base, base) == pytest.approx(0.0, abs=1e-12)
    assert population_stability_index(base, same) < 0.01
    psi_small = population_stability_index(base, small)
    psi_large = population_stability_index(base, large)
    assert 0.005 < psi_small < 0.1
    assert psi_large > 0.25 and psi_large > psi_small
    # Everything beyond the expected range lands in the outer bin and is still counted.
    assert population_stability_index(base, base + 100) > 5


def test_constant_expected_and_bad_input() -> None:
    assert population_stability_index(np.ones(100), np.ones(50)) == pytest.approx(0.0)
    assert population_stability_index(np.ones(100), np.zeros(50)) > 1
    with pytest.raises(DriftInputError, match="non-empty"):
        population_stability_index(np.array([]), np.ones(3))
    with pytest.raises(DriftInputError, match="NaN"):
        population_stability_index(np.array([1.0, np.nan]), np.ones(3))
    with pytest.raises(DriftInputError, match="bins"):
        population_stability_index(np.ones(3), np.ones(3), bins=1)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=200),
    st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=200),
)
def test_psi_is_finite_and_non_negative(a: list[float], b: list[float]) -> None:
    psi = population_stability_index(np.array(a), np.array(b))
    assert np.isfinite(psi) and psi >= 0
