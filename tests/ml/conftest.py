"""ML test settings: one BLAS/OpenMP thread, because CI boxes are shared and OpenMP
spin-waiting under contention made gradient-boosting fits 5x slower, not faster."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True, scope="session")
def _single_thread() -> Iterator[None]:
    with threadpool_limits(limits=1):
        yield
