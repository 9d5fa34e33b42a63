"""MLflow with an s3:// artifact root on a real S3 API server: a model logged, registered,
made champion and loaded back through the platform's resource; nothing local but the store."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from ml import registry
from orchestration.lib.resources import MlflowResource


def test_a_model_logged_to_s3_artifacts_loads_back_as_champion(s3, tmp_path, monkeypatch):
    # Unset, so the platform's S3_ENDPOINT_URL must reach MLflow (restored after the test).
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", "unset")
    monkeypatch.delenv("MLFLOW_S3_ENDPOINT_URL")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    resource = MlflowResource(tracking_uri=uri, artifacts_dir="s3://paysight-test/mlartifacts")
    resource.setup()
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=80), "b": rng.normal(size=80)})
    y = (x["a"] + 0.1 * rng.normal(size=80) > 0).astype(int)
    model = LogisticRegression().fit(x, y)
    with mlflow.start_run():
        model_uri = registry.log_sklearn_model(model, input_example=x.head(3))
    version = registry.register_model(model_uri, "churn", {"roc_auc": 0.9}, alias="champion")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="paysight-test")["Contents"]]
    assert any(k.startswith("mlartifacts/") and k.endswith("MLmodel") for k in keys), keys
    loaded_version, loaded = resource.load_champion_sklearn("churn")
    assert loaded_version == version
    assert (loaded.predict(x) == model.predict(x)).all()
    assert not [p for p in tmp_path.rglob("s3:*")]
