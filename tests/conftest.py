"""Shared fixtures: every test gets its own data directory and settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# CI explores the same examples every run (derandomized), so a run on a clean clone is
# reproducible; on a laptop each run explores new ones. Every example found failing is kept
# as an @example on its test.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DIR = REPO_ROOT.parent / "shared" / "reference"


@pytest.fixture
def reference_dir() -> Path:
    """`../shared/reference` (real Stripe/Razorpay/GST data); skip where it is absent."""
    if not REFERENCE_DIR.is_dir():
        pytest.skip(f"reference data not found at {REFERENCE_DIR} (it lives beside the checkout)")
    return REFERENCE_DIR


@pytest.fixture
def paysight_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every store at a temporary data directory and reset cached settings."""
    from orchestration.lib.env import get_settings

    data = tmp_path / "data"
    monkeypatch.chdir(tmp_path)  # no stray .env from the developer's checkout
    monkeypatch.setenv("PAYSIGHT_DATA_DIR", str(data))
    for var in (
        "PAYSIGHT_LEDGER_URL",
        "PAYSIGHT_WAREHOUSE_PATH",
        "MLFLOW_TRACKING_URI",
        "PAYSIGHT_LANDING_URL",
        "PAYSIGHT_GATEWAYS",
        "PAYSIGHT_DEFAULT_CURRENCY",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    get_settings.cache_clear()
    yield data
    get_settings.cache_clear()


@pytest.fixture
def smtp_server():
    """A real SMTP relay on 127.0.0.1 (tests/smtp_relay.py): (recorder, settings to reach it)."""
    from tests.smtp_relay import running_relay

    with running_relay() as relay:
        yield relay
