"""One small simulated world shared by the simulation tests (building it is the slow part)."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulation.world import SimulationResult, simulate

WORLD = {"customers": 60, "months": 4, "seed": 11, "start": "2025-02-01"}


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> SimulationResult:
    run_dir: Path = tmp_path_factory.mktemp("world")
    return simulate(None, run_dir, warehouse_path=run_dir / "warehouse.duckdb", **WORLD)


@pytest.fixture(scope="session")
def world_args() -> dict[str, object]:
    return dict(WORLD)
