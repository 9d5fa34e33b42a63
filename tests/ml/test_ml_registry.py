"""MLflow registry helpers against a real sqlite tracking store and a tmp artifact dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.calibration import CalibratedClassifierCV

from ml import registry
from ml.churn import fit_churn_model
from ml.synthetic import customer_features

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    artifacts = str(root / "artifacts")
    exp_id = registry.configure(uri, "paysight-test", artifact_location=artifacts)
    yield {"uri": uri, "artifacts": artifacts, "experiment_id": exp_id}
    mlflow.set_tracking_uri(None)


def _fit(seed: int) -> tuple[CalibratedClassifierCV, pd.DataFrame]:
    """The real churn trainer on a small seeded customer table."""
    table = customer_features(2_000, seed=seed)
    churn = fit_churn_model(table, "churned_30d", time_col="snapshot_date")
    return churn.model, table[churn.features]


def test_run_name_and_tags_and_card(store: dict[str, str]) -> None:
    card = registry.ModelCard(
        name="churn",
        model_type="hgb",
        parameters={"max_iter": 30},
        metrics={"roc_auc": 0.8},
        baseline_metrics={"roc_auc": 0.6},
        data_window={"start": "2025-01-01", "end": "2025-12-31"},
        holdout_window={"start": "2025-11-01", "end": "2025-12-31"},
        features=["tenure_days"],
    )
    run_id = registry.log_model_run(
        "churn_model", "abc123", card, {"tables/cmp.csv": pd.DataFrame({"a": [1]})}
    )
    run = MlflowClient().get_run(run_id)
    assert run.info.run_name == "churn_model-abc123"
    assert run.data.tags["dagster_asset"] == "churn_model"
    assert run.data.tags["dagster_run_id"] == "abc123"
    assert run.data.metrics["roc_auc"] == pytest.approx(0.8)
    assert run.data.metrics["baseline_roc_auc"] == pytest.approx(0.6)
    assert run.info.artifact_uri.startswith(Path(store["artifacts"]).resolve().as_uri())
    local = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path="model_card/model_card.json"
    )
    assert json.loads(Path(local).read_text())["features"] == ["tenure_days"]
    names = {a.path for a in MlflowClient().list_artifacts(run_id, "tables")}
    assert names == {"tables/cmp.csv"}


@pytest.mark.slow  # a fresh interpreter importing mlflow takes 15-60 s on a shared box
def test_register_promote_and_load_in_fresh_process(store: dict[str, str]) -> None:
    model, x = _fit(1)
    with registry.start_asset_run("churn_model", "run-1"):
        uri = registry.log_sklearn_model(model, input_example=x.head(3), predict_fn="predict_proba")
    v1 = registry.register_model(uri, "churn", {"roc_auc": 0.70}, holdout_window="2025-10/2025-12")
    first = registry.promote_if_better("churn", v1, "roc_auc", True, challenger_value=0.70)
    assert first.promoted and first.reason == "no champion yet"

    model2, _ = _fit(2)
    with registry.start_asset_run("churn_model", "run-2"):
        uri2 = registry.log_sklearn_model(
            model2, input_example=x.head(3), predict_fn="predict_proba"
        )
    v2 = registry.register_model(uri2, "churn", {"roc_auc": 0.65}, holdout_window="2025-10/2025-12")
    # Worse on the same holdout (read from the champion's tags): stays challenger.
    worse = registry.promote_if_better(
        "churn", v2, "roc_auc", True, challenger_value=0.65, holdout_window="2025-10/2025-12"
    )
    assert not worse.promoted and worse.champion_value == pytest.approx(0.70)
    assert str(registry.champion_version("churn").version) == v1
    assert MlflowClient().get_model_version_by_alias("churn", "challenger").version == int(v2)

    # A different holdout cannot be compared with stored numbers.
    with pytest.raises(registry.RegistryError, match="not measured on holdout"):
        registry.promote_if_better(
            "churn", v2, "roc_auc", True, challenger_value=0.9, holdout_window="2026-01/2026-03"
        )
    # Re-scoring the champion on the new holdout allows a fair comparison.
    better = registry.promote_if_better(
        "churn", v2, "roc_auc", True, challenger_value=0.9, score_champion=lambda m: 0.72
    )
    assert better.promoted and better.champion_version == v1
    assert str(registry.champion_version("churn").version) == v2

    frame = x.head(5)
    expected = model2.predict_proba(frame)[:, 1]
    script = textwrap.dedent(
        f"""
        import io, json, sys
        import mlflow, pandas as pd
        mlflow.set_tracking_uri({store["uri"]!r})
        model = mlflow.sklearn.load_model("models:/churn@champion")
        frame = pd.read_json(io.StringIO(sys.stdin.read()), orient="split")
        print(json.dumps(model.predict_proba(frame)[:, 1].tolist()))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        input=frame.to_json(orient="split", double_precision=15),
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=180,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    scored = json.loads(out.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(scored, expected, rtol=1e-9)


def test_lower_is_better_and_errors(store: dict[str, str]) -> None:
    model, x = _fit(3)
    with registry.start_asset_run("forecast", "r"):
        uri = registry.log_sklearn_model(model, input_example=x.head(2))
    v1 = registry.register_model(uri, "revenue_forecast")
    registry.promote_if_better("revenue_forecast", v1, "smape", False, challenger_value=0.20)
    with registry.start_asset_run("forecast", "r2"):
        uri2 = registry.log_sklearn_model(model, input_example=x.head(2))
    v2 = registry.register_model(uri2, "revenue_forecast")
    decision = registry.promote_if_better(
        "revenue_forecast",
        v2,
        "smape",
        False,
        challenger_value=0.15,
        holdout_metric_of_champion=0.18,
    )
    assert decision.promoted
    with pytest.raises(registry.RegistryError, match="already the champion"):
        registry.promote_if_better(
            "revenue_forecast",
            v2,
            "smape",
            False,
            challenger_value=0.1,
            holdout_metric_of_champion=0.2,
        )
    with pytest.raises(registry.RegistryError, match="not a finite"):
        registry.promote_if_better(
            "revenue_forecast", v1, "smape", False, challenger_value=float("nan")
        )
    with pytest.raises(registry.RegistryError, match="no champion"):
        registry.load_champion("does_not_exist")
    with pytest.raises(registry.RegistryError, match="run_id"):
        registry.run_name("asset", "")


def test_retry_model_registered_as_retry_timing(store: dict[str, str]) -> None:
    from ml.retry import REGISTERED_NAME, RetryModel, fit_retry_model, log_and_register
    from ml.synthetic import retry_attempts

    data = retry_attempts(3_000, seed=5)
    model = fit_retry_model(data)
    with registry.start_asset_run("retry_timing_model", "run-r"):
        version = log_and_register(model, data, model.holdout)
    registry.promote_if_better(
        REGISTERED_NAME, version, "roc_auc", True, model.metrics["hgb_roc_auc"]
    )
    loaded = RetryModel.from_pipeline(registry.load_champion_sklearn(REGISTERED_NAME))
    features = {
        "decline_code": "insufficient_funds",
        "method": "upi",
        "issuer": "SBI",
        "amount_minor": 19_900,
        "day_of_month": 3,
        "hour": 9,
        "attempt_number": 2,
    }
    assert loaded.as_scorer()(features, 24.0) == pytest.approx(model.as_scorer()(features, 24.0))


@pytest.mark.slow  # a fresh interpreter importing mlflow takes 15-60 s on a shared box
def test_champion_loads_without_the_source_after_the_store_moved(tmp_path: Path) -> None:
    """The churn pyfunc carries the ``ml`` package (code_paths), a signature, an input
    example and a description; after moving the whole store, a process that cannot import
    the paysight source loads ``models:/churn@champion`` and scores with the id column."""
    from ml.churn.registry import DESCRIPTION
    from ml.promotion import register_and_promote
    from ml.pyfunc import ChurnPyfunc

    old = tmp_path / "old"
    registry.configure(f"sqlite:///{old / 'mlflow.db'}", "move", artifact_location=str(old / "a"))
    table = customer_features(1_500, seed=7)
    churn = fit_churn_model(table, "churned_30d", time_col="snapshot_date")
    example = table.head(5).drop(columns=["churned_30d"])
    wrapped = ChurnPyfunc(churn)
    with registry.start_asset_run("churn_model", "run-move"):
        uri = registry.log_pyfunc_model(
            wrapped,
            input_example=example,
            signature=registry.signature_for(example, wrapped.predict(None, example)),
        )
        version, decision = register_and_promote(
            uri, "churn", "roc_auc", churn.metrics["roc_auc"], True, churn.holdout,
            baseline=("logistic_regression", 0.5), description=DESCRIPTION,
        )  # fmt: skip
    assert decision.promoted
    client = MlflowClient()
    assert client.get_registered_model("churn").description == DESCRIPTION
    mv = client.get_model_version("churn", version)
    assert "roc_auc" in mv.description and "Promoted" in mv.description
    assert mv.tags["promotion_metric"] == "roc_auc" and mv.tags["baseline"] == "logistic_regression"
    mlflow.set_tracking_uri(None)
    new = tmp_path / "moved"
    old.rename(new)
    frame = table.head(8).drop(columns=["churned_30d"])
    expected = churn.predict_proba(frame)
    # The registry (moved with the store) still records the old absolute artifact paths;
    # the helper finds the model under the new artifact directory.
    registry.configure(f"sqlite:///{new / 'mlflow.db'}", "move")
    path = registry.local_model_path("churn", artifacts_root=str(new / "a"))
    assert Path(path).is_relative_to(new)
    mlflow.set_tracking_uri(None)
    script = textwrap.dedent(
        f"""
        import importlib.util, io, json, sys
        from pathlib import Path
        repo = Path({str(REPO_ROOT)!r})
        sys.path = [p for p in sys.path if p and Path(p).resolve() != repo]
        assert importlib.util.find_spec("ml") is None, "the paysight source is importable"
        import mlflow, pandas as pd
        model = mlflow.pyfunc.load_model({path!r})
        import ml
        assert Path(ml.__file__).is_relative_to(Path({str(new)!r})), ml.__file__
        frame = pd.read_json(io.StringIO(sys.stdin.read()), orient="split")
        frame["snapshot_date"] = pd.to_datetime(frame["snapshot_date"])
        out = model.predict(frame)
        print(json.dumps({{"ids": out["customer_id"].tolist(),
                          "p": out["churn_probability"].tolist()}}))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        input=frame.to_json(orient="split", double_precision=15, date_format="iso"),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    scored = json.loads(out.stdout.strip().splitlines()[-1])
    assert scored["ids"] == frame["customer_id"].tolist()
    np.testing.assert_allclose(scored["p"], expected, rtol=1e-9)
    # In this process, the registry helper finds the moved artifacts on its own.
    registry.configure(f"sqlite:///{new / 'mlflow.db'}", "move")
    loaded = registry.load_champion("churn", artifacts_root=str(new / "a"))
    assert loaded.metadata.signature is not None
    np.testing.assert_allclose(
        loaded.predict(frame)["churn_probability"].to_numpy(), expected, rtol=1e-9
    )
    mlflow.set_tracking_uri(None)


def test_retry_pyfunc_returns_probabilities(store: dict[str, str]) -> None:
    from ml.retry import REGISTERED_NAME, fit_retry_model, log_and_register, prepare
    from ml.synthetic import retry_attempts

    registry.configure(store["uri"], "paysight-test")
    data = retry_attempts(1_500, seed=8)
    model = fit_retry_model(data)
    with registry.start_asset_run("retry_timing_model", "run-p"):
        version = log_and_register(model, data, model.holdout)
    loaded = mlflow.pyfunc.load_model(f"models:/{REGISTERED_NAME}/{version}")
    assert loaded.metadata.signature is not None
    probs = np.asarray(loaded.predict(prepare(data.head(40))), dtype=float)
    assert probs.shape == (40, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert len(np.unique(probs[:, 1])) > 2  # probabilities, not 0/1 class labels
