"""One small demo world per test session, shared by the tests that need a built warehouse."""

from __future__ import annotations

import pytest

from tests.e2e.demo_world import DemoWorld, build_demo_world


@pytest.fixture(scope="session")
def demo_world(tmp_path_factory: pytest.TempPathFactory) -> DemoWorld:
    """Built once per session (per xdist worker) under the session's base temp directory."""
    base = tmp_path_factory.getbasetemp() / "demo_world"
    base.mkdir(exist_ok=True)
    return build_demo_world(base)
