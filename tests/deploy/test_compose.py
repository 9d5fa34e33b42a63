"""deploy/docker-compose.yaml, checked without Docker: it parses, holds every service the
deployment needs, its webserver and daemon load the workspace that points at the code server
service, every ${VAR} it uses is set in deploy/.env.example, and no paysight store is given an
object-store URL (start-up refuses those). `docker compose config` runs too when available."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from orchestration.lib.env import load_settings
from orchestration.lib.paths import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yaml"
SERVICES = {"webserver", "daemon", "code-server", "postgres", "mlflow"}
IN_CONTAINER_WORKSPACE = "/opt/paysight/deploy/workspace.yaml"


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _env_example() -> dict[str, str]:
    pairs = {}
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f"deploy/.env.example: not NAME=value: {line!r}"
            assert name not in pairs, f"deploy/.env.example sets {name} twice"
            pairs[name] = value
    return pairs


def test_every_service_is_present():
    assert set(_compose()["services"]) == SERVICES


def test_webserver_and_daemon_load_the_code_server_workspace():
    services = _compose()["services"]
    for name in ("webserver", "daemon"):
        command = services[name]["command"]
        assert command[command.index("-w") + 1] == IN_CONTAINER_WORKSPACE
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    (entry,) = workspace["load_from"]
    grpc = entry["grpc_server"]
    assert grpc["host"] == "code-server"
    # The port the code server's image listens on (deploy/Dockerfile's CMD).
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert f'"-p", "{grpc["port"]}"' in dockerfile
    assert f'"--location-name", "{grpc["location_name"]}"' in dockerfile


def test_workspace_passes_dagster_workspace_schema():
    from dagster._core.workspace.config_schema import ensure_workspace_config

    ensure_workspace_config(
        yaml.safe_load((DEPLOY / "workspace.yaml").read_text()), str(DEPLOY / "workspace.yaml")
    )


def test_every_interpolated_variable_is_in_env_example():
    used = set(re.findall(r"\$\{(\w+)", COMPOSE.read_text()))
    assert used, "the compose file interpolates nothing: the test would pass vacuously"
    assert used <= set(_env_example())


def test_instance_file_mounted_is_the_postgres_one():
    code = _compose()["services"]["code-server"]
    assert "./dagster-postgres.yaml:/opt/dagster/dagster_home/dagster.yaml:ro" in code["volumes"]
    assert code["environment"]["DAGSTER_HOME"] == "/opt/dagster/dagster_home"
    assert code["environment"]["DAGSTER_PG_URL"].startswith("postgresql+psycopg2://")


def test_paysight_settings_from_compose_are_accepted(tmp_path):
    """The environment the containers get loads as paysight settings: local paths for the file
    stores (an s3:// URL would be refused), the ledger on PostgreSQL, MLflow over HTTP."""
    env = dict(_compose()["services"]["daemon"]["environment"])
    password = _env_example()["POSTGRES_PASSWORD"]
    values = {k: v.replace("${POSTGRES_PASSWORD}", password) for k, v in env.items()}
    assert not [v for k, v in values.items() if k.startswith("PAYSIGHT_") and "s3://" in v]
    settings = load_settings(
        data_dir=tmp_path,
        ledger_url=values["PAYSIGHT_LEDGER_URL"],
        warehouse_path=values["PAYSIGHT_WAREHOUSE_PATH"],
        landing_url=values["PAYSIGHT_LANDING_URL"],
        documents_url=values["PAYSIGHT_DOCUMENTS_URL"],
        mlflow_tracking_uri=values["MLFLOW_TRACKING_URI"],
        mlflow_artifacts_dir=values["PAYSIGHT_MLFLOW_ARTIFACTS_DIR"],
        gateways=_env_example()["PAYSIGHT_GATEWAYS"].split(","),
        default_currency=_env_example()["PAYSIGHT_DEFAULT_CURRENCY"],
    )
    assert settings.mlflow_tracking_uri == "http://mlflow:5000"


def test_docker_compose_config_validates(tmp_path):
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker is not installed: `docker compose config` not run")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(
            f"docker has no compose plugin: `docker compose config` not run ({probe.stderr.strip().splitlines()[0]})"
        )
    env_file = tmp_path / ".env"
    env_file.write_text((DEPLOY / ".env.example").read_text())
    shutil.copy(COMPOSE, tmp_path / "docker-compose.yaml")
    for name in ("dagster-postgres.yaml", "postgres-init.sh", "workspace.yaml"):
        shutil.copy(DEPLOY / name, tmp_path / name)
    done = subprocess.run(
        [docker, "compose", "-f", str(tmp_path / "docker-compose.yaml"), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
