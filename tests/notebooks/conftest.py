"""The notebooks run against the session's small demo world (shared with tests/e2e)."""

from __future__ import annotations

import pytest

from tests.e2e.demo_world import DemoWorld, build_demo_world


@pytest.fixture(scope="session")
def demo_world(tmp_path_factory: pytest.TempPathFactory) -> DemoWorld:
    """Same directory as tests/e2e's fixture, so one session builds the world once."""
    base = tmp_path_factory.getbasetemp() / "demo_world"
    base.mkdir(exist_ok=True)
    return build_demo_world(base)
