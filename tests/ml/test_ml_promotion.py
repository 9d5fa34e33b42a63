"""Promotion against a real MLflow store: a model that loses to its baseline on the same
holdout is registered but never promoted, not even as the first champion."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from sklearn.dummy import DummyClassifier

from ml import registry
from ml.promotion import beats, register_and_promote


@pytest.fixture()
def store(tmp_path: Path):
    registry.configure(f"sqlite:///{tmp_path / 'mlflow.db'}", "promo", str(tmp_path / "a"))
    yield
    mlflow.set_tracking_uri(None)


def _uri(run: str) -> str:
    model = DummyClassifier().fit([[0], [1]], [0, 1])
    with registry.start_asset_run("m", run):
        return registry.log_sklearn_model(model)


def test_first_model_losing_to_its_baseline_is_not_champion(store) -> None:
    version, decision = register_and_promote(
        _uri("r1"), "m", "roc_auc", 0.56, True, "holdout A", baseline=("amount", 0.61)
    )
    assert not decision.promoted
    assert "does not beat its baseline amount" in decision.reason
    assert registry.champion_version("m") is None
    client = MlflowClient()
    assert client.get_model_version_by_alias("m", "challenger").version == int(version)
    mv = client.get_model_version("m", version)
    assert mv.tags["promotion"] == "rejected" and mv.tags["metric.baseline_roc_auc"] == "0.61"
    assert "Not promoted" in mv.description
    # The next one that beats the baseline becomes the first champion.
    v2, second = register_and_promote(
        _uri("r2"), "m", "roc_auc", 0.7, True, "holdout B", baseline=("amount", 0.61)
    )
    assert second.promoted and second.reason == "no champion yet"
    assert str(registry.champion_version("m").version) == v2
    # A later challenger that beats the champion but not its own baseline stays out.
    _, third = register_and_promote(
        _uri("r3"), "m", "roc_auc", 0.8, True, "holdout C", lambda champion: 0.5,
        baseline=("amount", 0.85),
    )  # fmt: skip
    assert not third.promoted and str(registry.champion_version("m").version) == v2


def test_beats_is_the_check_rule() -> None:
    assert beats(0.7, 0.7, True) and not beats(0.69, 0.7, True)
    assert beats(0.9, 1.0, False) and not beats(1.1, 1.0, False)
    assert not beats(float("nan"), 0.5, True)
