"""MLflow helpers: one place that configures tracking, names runs, logs model cards and
moves the ``champion``/``challenger`` aliases of registered models.

Orchestration calls :func:`configure` once (from its MLflow resource) and then
:func:`start_asset_run` per materialization; nothing here imports dagster.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

CHAMPION = "champion"
CHALLENGER = "challenger"
# Packages a loader needs; pinned lists avoid MLflow's slow requirement inference
# (it re-imports the model in a subprocess) and keep logging offline.
_PIP_REQUIREMENTS = ["mlflow", "scikit-learn", "pandas", "numpy", "skops"]
# Only library types may be trusted when skops loads a model back; anything else
# (a custom class) must go through the pyfunc flavour instead.
# functools.partial appears in ColumnTransformer pipelines (wrapping sklearn's check_array).
_TRUSTED_PREFIXES = (
    "sklearn.",
    "numpy.",
    "scipy.",
    "builtins.",
    "collections.",
    "functools.partial",
)


class RegistryError(Exception):
    """An MLflow registry operation was refused; the message says why and what to do."""


@dataclass(frozen=True)
class ModelCard:
    """What a reader of the registry needs to judge a model version."""

    name: str
    model_type: str
    parameters: dict[str, Any]
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    data_window: dict[str, str]
    holdout_window: dict[str, str]
    features: list[str]
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=str)

    def to_markdown(self) -> str:
        lines = [f"# Model card: {self.name}", "", f"Model type: `{self.model_type}`", ""]
        lines += ["## Data window", ""]
        lines += [f"- {k}: {v}" for k, v in self.data_window.items()]
        lines += ["", "## Time-based holdout", ""]
        lines += [f"- {k}: {v}" for k, v in self.holdout_window.items()]
        lines += ["", "## Metrics (holdout)", "", "| metric | model | baseline |", "|---|---|---|"]
        for k, v in sorted(self.metrics.items()):
            base = self.baseline_metrics.get(k)
            lines.append(f"| {k} | {v:.4f} | {'' if base is None else f'{base:.4f}'} |")
        lines += ["", "## Parameters", ""]
        lines += [f"- {k}: {v}" for k, v in sorted(self.parameters.items())]
        lines += ["", "## Features", ""]
        lines += [f"- {f}" for f in self.features]
        if self.notes:
            lines += ["", "## Notes", "", self.notes]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class PromotionDecision:
    name: str
    challenger_version: str
    champion_version: str | None
    metric: str
    challenger_value: float
    champion_value: float | None
    promoted: bool
    reason: str


def configure(tracking_uri: str, experiment: str, artifact_location: str | None = None) -> str:
    """Point MLflow at ``tracking_uri`` and select (creating if needed) ``experiment``.

    Returns the experiment id. ``artifact_location`` is only used when the experiment is
    created; an existing experiment keeps its location (MLflow cannot move it).
    """
    if not tracking_uri:
        raise RegistryError("tracking_uri is empty; pass e.g. sqlite:///data/mlflow.db")
    if not experiment:
        raise RegistryError("experiment name is empty")
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    _s3_endpoint_for_mlflow()
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    existing = client.get_experiment_by_name(experiment)
    if existing is None:
        location = None
        if artifact_location is not None:
            location = _as_uri(artifact_location)
        experiment_id = client.create_experiment(experiment, artifact_location=location)
    else:
        experiment_id = existing.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def _s3_endpoint_for_mlflow() -> None:
    """MLflow's S3 artifact store reads ``MLFLOW_S3_ENDPOINT_URL``; the platform's endpoint
    setting (``S3_ENDPOINT_URL``) fills it when it is not set on its own."""
    endpoint = os.environ.get("S3_ENDPOINT_URL")
    if endpoint and not os.environ.get("MLFLOW_S3_ENDPOINT_URL"):
        os.environ["MLFLOW_S3_ENDPOINT_URL"] = endpoint


def _as_uri(location: str) -> str:
    if "://" in location or location.startswith("file:"):
        return location
    path = Path(location).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path.as_uri()


def run_name(asset: str, run_id: str) -> str:
    """Runs are named ``<asset>-<dagster run id>`` so the UI lists them next to each other."""
    if not asset or not run_id:
        raise RegistryError(f"asset and run_id are required, got {asset!r} and {run_id!r}")
    return f"{asset}-{run_id}"


@contextmanager
def start_asset_run(
    asset: str, dagster_run_id: str, tags: Mapping[str, str] | None = None
) -> Iterator[mlflow.ActiveRun]:
    """Start an MLflow run for one asset materialization, tagged with asset and run id."""
    all_tags = {"dagster_asset": asset, "dagster_run_id": dagster_run_id, **(tags or {})}
    with mlflow.start_run(run_name=run_name(asset, dagster_run_id), tags=all_tags) as run:
        yield run


def _clean_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in metrics.items():
        number = float(value)
        # MLflow accepts NaN but it breaks comparisons in the UI; skip undefined metrics.
        if math.isfinite(number):
            out[_metric_key(key)] = number
    return out


def _metric_key(key: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_-./ " else "_" for ch in str(key))


def log_params(params: Mapping[str, Any]) -> None:
    mlflow.log_params({_metric_key(k): str(v)[:500] for k, v in params.items()})


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    mlflow.log_metrics(_clean_metrics(metrics), step=step)


def log_table(df: pd.DataFrame, artifact_file: str) -> None:
    """Log a DataFrame as a CSV artifact (e.g. a backtest or comparison table)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(artifact_file).name
        df.to_csv(path, index=False)
        parent = str(Path(artifact_file).parent)
        mlflow.log_artifact(str(path), artifact_path=None if parent == "." else parent)


def log_model_card(card: ModelCard) -> None:
    """Log the card as ``model_card.json`` and ``model_card.md`` artifacts of the active run."""
    mlflow.log_text(card.to_json(), "model_card/model_card.json")
    mlflow.log_text(card.to_markdown(), "model_card/model_card.md")


def trusted_types(model: Any) -> list[str]:
    """Types skops must be told to trust to load ``model`` (tree predictors, calibrators)."""
    import skops.io as sio

    untrusted = sio.get_untrusted_types(data=sio.dumps(model))
    foreign = [t for t in untrusted if not t.startswith(_TRUSTED_PREFIXES)]
    if foreign:
        raise RegistryError(
            f"model contains non-library types {foreign}; log it with log_pyfunc_model instead"
        )
    return list(untrusted)


def log_sklearn_model(
    model: Any,
    name: str = "model",
    input_example: pd.DataFrame | None = None,
    predict_fn: str = "predict",
    signature: Any = None,
) -> str:
    """Log a scikit-learn estimator with skops serialization; returns the model URI."""
    info = mlflow.sklearn.log_model(
        model,
        name=name,
        serialization_format="skops",
        skops_trusted_types=trusted_types(model),
        input_example=input_example,
        signature=signature,
        pip_requirements=_PIP_REQUIREMENTS,
        pyfunc_predict_fn=predict_fn,
    )
    return info.model_uri


ML_PACKAGE = Path(__file__).resolve().parent


def signature_for(example: pd.DataFrame, output: Any) -> Any:
    """A signature from an example and its prediction. Numeric input columns are declared
    ``Any``: real frames mix integers with gaps (NULL counts become floats), and the models
    read numbers stored as text too, where a strict integer or double schema would reject
    rows the model scores fine. Text and timestamp columns keep their types."""
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types.schema import AnyType, ColSpec, Schema

    inferred = infer_signature(example, output)
    cols = []
    for spec in inferred.inputs.inputs:
        numeric = pd.api.types.is_numeric_dtype(example[spec.name])
        cols.append(ColSpec(AnyType(), spec.name) if numeric else spec)
    return ModelSignature(inputs=Schema(cols), outputs=inferred.outputs)


def log_pyfunc_model(
    python_model: mlflow.pyfunc.PythonModel,
    name: str = "model",
    input_example: pd.DataFrame | None = None,
    signature: Any = None,
) -> str:
    """Log a custom ``PythonModel`` with the ``ml`` package as its code (``code_paths``), so
    a process without the paysight source loads it; returns the URI."""
    info = mlflow.pyfunc.log_model(
        name=name,
        python_model=python_model,
        input_example=input_example,
        signature=signature,
        code_paths=[str(ML_PACKAGE)],
        pip_requirements=_PIP_REQUIREMENTS,
    )
    return info.model_uri


def register_model(
    model_uri: str,
    name: str,
    metrics: Mapping[str, float] | None = None,
    holdout_window: str | None = None,
    alias: str | None = CHALLENGER,
    description: str | None = None,
) -> str:
    """Register ``model_uri`` as a new version of ``name``; returns the version.

    Holdout metrics and the holdout window are stored as version tags so a later
    promotion can tell whether two versions were judged on the same data. ``description``
    describes the registered model (set when given) and, with the metrics, the version.
    """
    version = mlflow.register_model(model_uri, name)
    client = MlflowClient()
    clean = _clean_metrics(metrics or {})
    for key, value in clean.items():
        client.set_model_version_tag(name, version.version, f"metric.{key}", repr(value))
    if holdout_window is not None:
        client.set_model_version_tag(name, version.version, "holdout_window", holdout_window)
    if description:
        client.update_registered_model(name, description=description)
    shown = ", ".join(f"{k} {v:.4g}" for k, v in clean.items())
    client.update_model_version(
        name,
        version.version,
        description=f"Holdout {holdout_window or '(none)'}: {shown or 'not evaluated'}.",
    )
    if alias is not None:
        client.set_registered_model_alias(name, alias, version.version)
    return str(version.version)


def champion_version(name: str) -> ModelVersion | None:
    """The version currently aliased ``champion``, or None when there is none yet."""
    client = MlflowClient()
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def promote_if_better(
    name: str,
    challenger_version: str,
    metric: str,
    higher_is_better: bool,
    challenger_value: float,
    holdout_metric_of_champion: float | None = None,
    score_champion: Callable[[Any], float] | None = None,
    holdout_window: str | None = None,
    min_improvement: float = 0.0,
) -> PromotionDecision:
    """Make ``challenger_version`` the champion only if it beats the champion on the same holdout.

    The champion's number on the challenger's holdout comes from, in order:
    ``holdout_metric_of_champion`` (already computed by the caller), ``score_champion``
    (called with the loaded champion pyfunc model), or the champion version's stored
    ``metric.<metric>`` tag when its ``holdout_window`` tag equals ``holdout_window``.
    Numbers from a different holdout are never compared: that raises RegistryError.
    """
    client = MlflowClient()
    challenger_value = float(challenger_value)
    if not math.isfinite(challenger_value):
        raise RegistryError(f"challenger {metric} is not a finite number: {challenger_value}")
    client.set_registered_model_alias(name, CHALLENGER, challenger_version)
    current = champion_version(name)
    if current is None:
        client.set_registered_model_alias(name, CHAMPION, challenger_version)
        decision = PromotionDecision(
            name, challenger_version, None, metric, challenger_value, None, True, "no champion yet"
        )
        tag_decision(client, decision)
        return decision
    if str(current.version) == str(challenger_version):
        raise RegistryError(f"version {challenger_version} of {name} is already the champion")
    champion_value = _champion_value(
        name, current, metric, holdout_metric_of_champion, score_champion, holdout_window
    )
    margin = (
        challenger_value - champion_value if higher_is_better else champion_value - challenger_value
    )
    promoted = margin > min_improvement
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, challenger_version)
        reason = f"{metric} {challenger_value:.6g} beats champion {champion_value:.6g}"
    else:
        reason = f"{metric} {challenger_value:.6g} does not beat champion {champion_value:.6g}"
    decision = PromotionDecision(
        name,
        challenger_version,
        str(current.version),
        metric,
        challenger_value,
        champion_value,
        promoted,
        reason,
    )
    tag_decision(client, decision)
    return decision


def _champion_value(
    name: str,
    current: ModelVersion,
    metric: str,
    given: float | None,
    score_champion: Callable[[Any], float] | None,
    holdout_window: str | None,
) -> float:
    if given is not None:
        return float(given)
    if score_champion is not None:
        return float(score_champion(load_champion(name)))
    tags = current.tags or {}
    stored = tags.get(f"metric.{_metric_key(metric)}")
    if (
        stored is not None
        and holdout_window is not None
        and tags.get("holdout_window") == holdout_window
    ):
        return float(stored)
    raise RegistryError(
        f"cannot compare with champion v{current.version} of {name}: its {metric} was not "
        f"measured on holdout {holdout_window!r}; pass holdout_metric_of_champion or score_champion"
    )


def tag_decision(client: MlflowClient, decision: PromotionDecision) -> None:
    """The decision and the numbers behind it, as tags and in the version description."""
    v = decision.challenger_version
    tags = {
        "promotion": "promoted" if decision.promoted else "rejected",
        "promotion_reason": decision.reason,
        "promotion_metric": decision.metric,
        "promotion_challenger_value": repr(decision.challenger_value),
    }
    if decision.champion_value is not None and math.isfinite(decision.champion_value):
        tags["promotion_champion_value"] = repr(decision.champion_value)
        tags["promotion_champion_version"] = str(decision.champion_version)
    for key, value in tags.items():
        client.set_model_version_tag(decision.name, v, key, value)
    current = client.get_model_version(decision.name, v).description or ""
    verdict = "Promoted to champion" if decision.promoted else "Not promoted"
    client.update_model_version(
        decision.name, v, description=f"{current} {verdict}: {decision.reason}.".strip()
    )


def local_model_path(name: str, alias: str = CHAMPION, artifacts_root: str | None = None) -> str:
    """Where the artifacts of ``models:/<name>@<alias>`` are on this machine.

    MLflow records absolute artifact locations. When the data directory has moved (a copy
    of ``data/`` on another machine, a renamed checkout), the recorded path no longer
    exists; the model is then looked up at the same place relative to ``artifacts_root``
    (the artifact directory of the current settings), so moving the store does not break
    loading."""
    client = MlflowClient()
    try:
        version = client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        raise RegistryError(f"registered model {name!r} has no {alias} alias yet") from exc
    source = version.source
    if source.startswith("models:/"):
        # MLflow 3 registers logged models: the version's source names the model id.
        model_id = getattr(version, "model_id", None) or source.removeprefix("models:/")
        source = client.get_logged_model(model_id.split("/")[0]).artifact_location
    if "://" in source and not source.startswith("file:"):
        return source  # an object-store artifact (s3://...): MLflow downloads it
    path = Path(_file_path(source))
    if path.exists() or artifacts_root is None:
        return str(path)
    experiment = client.get_experiment(client.get_run(version.run_id).info.experiment_id)
    old_root = Path(_file_path(experiment.artifact_location))
    try:
        relative = path.relative_to(old_root)
    except ValueError as exc:
        raise RegistryError(f"model artifacts at {path} are missing") from exc
    moved = Path(artifacts_root).resolve() / relative
    if not moved.exists():
        raise RegistryError(f"model artifacts are neither at {path} nor at {moved}")
    return str(moved)


def _file_path(uri: str) -> str:
    from urllib.parse import unquote, urlparse

    return unquote(urlparse(uri).path) if uri.startswith("file:") else uri


def load_champion(name: str, artifacts_root: str | None = None) -> mlflow.pyfunc.PyFuncModel:
    """Load ``models:/<name>@champion`` as a pyfunc model (see :func:`local_model_path`)."""
    if champion_version(name) is None:
        raise RegistryError(f"registered model {name!r} has no champion alias yet")
    if artifacts_root is None:
        return mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}")
    return mlflow.pyfunc.load_model(local_model_path(name, CHAMPION, artifacts_root))


def load_champion_sklearn(name: str, artifacts_root: str | None = None) -> Any:
    """Load the champion with the sklearn flavour (gives ``predict_proba``)."""
    if champion_version(name) is None:
        raise RegistryError(f"registered model {name!r} has no champion alias yet")
    if artifacts_root is None:
        return mlflow.sklearn.load_model(f"models:/{name}@{CHAMPION}")
    return mlflow.sklearn.load_model(local_model_path(name, CHAMPION, artifacts_root))


def log_model_run(
    asset: str,
    dagster_run_id: str,
    card: ModelCard,
    tables: Mapping[str, pd.DataFrame] | None = None,
) -> str:
    """Convenience for assets: one run with params, metrics, card and tables; returns run id."""
    with start_asset_run(asset, dagster_run_id) as run:
        log_params(card.parameters)
        log_metrics(card.metrics)
        log_metrics({f"baseline_{k}": v for k, v in card.baseline_metrics.items()})
        log_model_card(card)
        for artifact_file, table in (tables or {}).items():
            log_table(table, artifact_file)
        return run.info.run_id


__all__: Sequence[str] = [
    "CHALLENGER",
    "CHAMPION",
    "ModelCard",
    "PromotionDecision",
    "RegistryError",
    "champion_version",
    "configure",
    "load_champion",
    "load_champion_sklearn",
    "local_model_path",
    "log_metrics",
    "log_model_card",
    "log_model_run",
    "log_params",
    "log_pyfunc_model",
    "log_sklearn_model",
    "log_table",
    "promote_if_better",
    "register_model",
    "run_name",
    "signature_for",
    "start_asset_run",
    "trusted_types",
]
