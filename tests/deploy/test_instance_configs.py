"""Every Dagster instance file under deploy/ passes Dagster's own instance-config validation,
names its stores and run launcher through `env:` (no credential in the files), and keeps the
embedded instance's concurrency limits; each run launcher's config passes the launcher class's
own schema, and the Kubernetes launcher is constructed from it (no cluster is contacted)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml
from dagster._config import process_config
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.instance.config import dagster_instance_config

from orchestration.lib.paths import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"
PRODUCTION = ["dagster-postgres.yaml", "dagster-ecs.yaml", "dagster-k8s.yaml"]
LAUNCHERS = {
    "dagster-ecs.yaml": ("dagster_aws.ecs", "EcsRunLauncher"),
    "dagster-k8s.yaml": ("dagster_k8s", "K8sRunLauncher"),
}
ENV = {
    "DAGSTER_PG_URL": "postgresql+psycopg2://dagster:secret@db.internal:5432/dagster",
    "DAGSTER_ECS_TASK_DEFINITION": "paysight-run",
    "DAGSTER_K8S_NAMESPACE": "paysight",
    "DAGSTER_K8S_JOB_IMAGE": "registry.internal/paysight:1",
}


@pytest.fixture
def env(monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)


def _raw(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def _strings(value) -> list[str]:
    """Every string value in a parsed YAML document (keys excluded)."""
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


def _launcher_class(name: str):
    module, cls = LAUNCHERS[name]
    return getattr(importlib.import_module(module), cls)


@pytest.mark.parametrize("name", ["dagster.yaml", *PRODUCTION])
def test_instance_file_passes_dagster_validation(name, env):
    config, custom_class = dagster_instance_config(str(DEPLOY), name)
    assert custom_class is None
    assert config["telemetry"] == {"enabled": False}


@pytest.mark.parametrize("name", PRODUCTION)
def test_production_instance_stores_everything_in_postgres_from_env(name):
    raw = _raw(name)
    # One `storage: postgres` block covers runs, event log and schedules.
    assert raw["storage"] == {"postgres": {"postgres_url": {"env": "DAGSTER_PG_URL"}}}
    assert not [v for v in _strings(raw) if "://" in v or "password" in v.lower()]
    assert raw["concurrency"] == _raw("dagster.yaml")["concurrency"]


@pytest.mark.parametrize("name", sorted(LAUNCHERS))
def test_run_launcher_config_passes_the_launcher_schema(name, env):
    launcher = _raw(name)["run_launcher"]
    assert (launcher["module"], launcher["class"]) == LAUNCHERS[name]
    result = process_config(_launcher_class(name).config_type(), launcher["config"])
    assert result.success, result.errors


@pytest.mark.parametrize("name", sorted(LAUNCHERS))
def test_misspelt_launcher_key_is_rejected(name, env):
    config = dict(_raw(name)["run_launcher"]["config"])
    config["job_namspace" if "k8s" in name else "contaner_name"] = "x"
    result = process_config(_launcher_class(name).config_type(), config)
    assert not result.success
    assert any("namspace" in e.message or "contaner" in e.message for e in result.errors)


def test_k8s_namespace_unset_is_an_error(env, monkeypatch):
    monkeypatch.delenv("DAGSTER_K8S_NAMESPACE")
    config = _raw("dagster-k8s.yaml")["run_launcher"]["config"]
    result = process_config(_launcher_class("dagster-k8s.yaml").config_type(), config)
    assert not result.success
    assert "DAGSTER_K8S_NAMESPACE" in str([e.message for e in result.errors])


def test_ecs_launcher_refuses_an_unset_task_definition_before_calling_aws(env, monkeypatch):
    """The ECS launcher reads its task definition's variable itself, when constructed, and
    fails naming it before its first AWS call (creating boto3 clients makes none)."""
    from dagster._serdes import ConfigurableClassData

    monkeypatch.delenv("DAGSTER_ECS_TASK_DEFINITION")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    launcher = _raw("dagster-ecs.yaml")["run_launcher"]
    data = ConfigurableClassData(
        launcher["module"], launcher["class"], yaml.safe_dump(launcher["config"])
    )
    with pytest.raises(Exception, match="DAGSTER_ECS_TASK_DEFINITION"):
        data.rehydrate(as_type=_launcher_class("dagster-ecs.yaml"))


def test_storage_config_passes_the_postgres_storage_schema(env):
    from dagster_postgres import (
        PostgresEventLogStorage,
        PostgresRunStorage,
        PostgresScheduleStorage,
    )

    config = _raw("dagster-postgres.yaml")["storage"]["postgres"]
    for storage in (PostgresRunStorage, PostgresEventLogStorage, PostgresScheduleStorage):
        result = process_config(storage.config_type(), config)
        assert result.success, result.errors
        assert result.value["postgres_url"] == ENV["DAGSTER_PG_URL"]


def test_unset_database_url_fails_before_any_connection(tmp_path, monkeypatch):
    import dagster as dg

    monkeypatch.delenv("DAGSTER_PG_URL", raising=False)
    (tmp_path / "dagster.yaml").write_text((DEPLOY / "dagster-postgres.yaml").read_text())
    with pytest.raises(DagsterInvalidConfigError) as raised:
        dg.DagsterInstance.from_config(str(tmp_path)).run_storage  # noqa: B018
    assert "DAGSTER_PG_URL" in str(raised.value)


def test_two_storage_blocks_are_rejected(tmp_path, env):
    raw = _raw("dagster-postgres.yaml")
    raw["run_storage"] = {"module": "dagster.core.storage.runs", "class": "SqliteRunStorage"}
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(DagsterInvalidConfigError, match="storage"):
        dagster_instance_config(str(tmp_path))


def test_k8s_launcher_is_constructed_from_its_config(env, tmp_path: Path):
    """Construction loads a kubeconfig and builds API clients without contacting a cluster; the
    production file loads the in-cluster config, so a kubeconfig stands in for it here."""
    from dagster._serdes import ConfigurableClassData

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    launcher = _raw("dagster-k8s.yaml")["run_launcher"]
    config = {
        **launcher["config"],
        "load_incluster_config": False,
        "kubeconfig_file": str(kubeconfig),
    }
    built = ConfigurableClassData(
        launcher["module"], launcher["class"], yaml.safe_dump(config)
    ).rehydrate(as_type=_launcher_class("dagster-k8s.yaml"))
    assert built.job_namespace == "paysight"
    assert built.dagster_home == "/opt/dagster/dagster_home"
    assert built.instance_config_map == "paysight-dagster-instance"
