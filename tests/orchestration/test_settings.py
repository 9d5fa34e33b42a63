"""Settings: embedded defaults under data/, and clear start-up errors naming the setting."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestration.lib.env import SettingsError, load_settings


def test_embedded_defaults_live_under_the_data_dir(paysight_env: Path):
    s = load_settings()
    assert s.data_dir == paysight_env.resolve()
    assert s.ledger_url == f"sqlite:///{paysight_env.resolve() / 'ledger.sqlite'}"
    assert s.warehouse_path == paysight_env.resolve() / "warehouse.duckdb"
    assert s.mlflow_tracking_uri == f"sqlite:///{paysight_env.resolve() / 'mlflow.db'}"
    assert s.landing_dir == paysight_env.resolve() / "landing"
    assert s.gateways == ["simulated"]
    assert s.default_currency == "INR"
    assert s.timezone == "Asia/Kolkata"
    assert paysight_env.is_dir() and s.landing_dir.is_dir()


def test_environment_overrides(paysight_env, monkeypatch):
    monkeypatch.setenv("PAYSIGHT_GATEWAYS", " Simulated , stripe ")
    monkeypatch.setenv("PAYSIGHT_DEFAULT_CURRENCY", "usd")
    monkeypatch.setenv("PAYSIGHT_LEDGER_URL", "postgresql+psycopg://u@db/ledger")
    s = load_settings()
    assert s.gateways == ["simulated", "stripe"]
    assert s.default_currency == "USD"
    assert s.ledger_url.startswith("postgresql")


@pytest.mark.parametrize(
    ("var", "value", "named"),
    [
        ("PAYSIGHT_DEFAULT_CURRENCY", "XYZ", "PAYSIGHT_DEFAULT_CURRENCY"),
        ("PAYSIGHT_GATEWAYS", "paypal", "PAYSIGHT_GATEWAYS"),
        ("PAYSIGHT_GATEWAYS", ",", "PAYSIGHT_GATEWAYS"),
        ("PAYSIGHT_TIMEZONE", "Mars/Olympus", "PAYSIGHT_TIMEZONE"),
        ("PAYSIGHT_LEDGER_URL", "mysql://x/y", "PAYSIGHT_LEDGER_URL"),
        ("PAYSIGHT_LANDING_URL", "gs://bucket/landing", "PAYSIGHT_LANDING_URL: gs:// locations"),
        ("PAYSIGHT_LANDING_URL", "s3://", "PAYSIGHT_LANDING_URL: 's3://': expected s3://bucket"),
        ("PAYSIGHT_DOCUMENTS_URL", "gs://bucket/docs", "PAYSIGHT_DOCUMENTS_URL: gs:// locations"),
        ("PAYSIGHT_MLFLOW_ARTIFACTS_DIR", "gs://b/ml", "PAYSIGHT_MLFLOW_ARTIFACTS_DIR: must be"),
        ("PAYSIGHT_DBT_TARGET", "prod", "PAYSIGHT_DBT_TARGET: unknown dbt target 'prod'"),
    ],
)
def test_bad_values_name_the_setting(paysight_env, monkeypatch, var, value, named):
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert named in str(err.value)


def test_the_spark_target_without_java_names_what_is_missing(paysight_env, monkeypatch, tmp_path):
    monkeypatch.setenv("PAYSIGHT_DBT_TARGET", "spark")
    monkeypatch.setenv("PATH", str(tmp_path))  # no java here
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert "PAYSIGHT_DBT_TARGET: the spark target needs a Java runtime" in str(err.value)


def test_the_spark_target_keeps_its_tables_under_the_spark_dir(paysight_env, monkeypatch, tmp_path):
    monkeypatch.setenv("PAYSIGHT_DBT_TARGET", "spark")
    monkeypatch.setenv("PAYSIGHT_SPARK_DIR", str(tmp_path / "lake"))
    settings = load_settings()
    assert settings.spark_tables_dir == (tmp_path / "lake" / "warehouse").resolve()
    monkeypatch.setenv("PAYSIGHT_DBT_TARGET", "dev")
    assert load_settings().spark_tables_dir is None


def test_a_data_dir_that_is_a_file_is_refused(paysight_env, monkeypatch, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    monkeypatch.setenv("PAYSIGHT_DATA_DIR", str(blocker))
    with pytest.raises(SettingsError, match=r"PAYSIGHT_DATA_DIR: .* not a directory"):
        load_settings()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_an_unwritable_data_dir_is_refused(paysight_env, monkeypatch, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    monkeypatch.setenv("PAYSIGHT_DATA_DIR", str(locked / "data"))
    with pytest.raises(SettingsError, match="PAYSIGHT_DATA_DIR"):
        load_settings()


def test_a_bad_dotenv_value_names_the_setting(paysight_env, tmp_path):
    (tmp_path / ".env").write_text("PAYSIGHT_DEFAULT_CURRENCY=RUPEES\n")
    with pytest.raises(SettingsError, match="PAYSIGHT_DEFAULT_CURRENCY"):
        load_settings()


def test_an_undecodable_dotenv_is_a_settings_error(paysight_env, tmp_path):
    (tmp_path / ".env").write_bytes(b"PAYSIGHT_TIMEZONE=\xff\xfe\n")
    with pytest.raises(SettingsError):
        load_settings()


def test_cli_fails_at_start_up_with_the_setting_name(paysight_env, tmp_path):
    env = {**os.environ, "PAYSIGHT_DEFAULT_CURRENCY": "ABC", "PAYSIGHT_DATA_DIR": str(paysight_env)}
    proc = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "settings"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "PAYSIGHT_DEFAULT_CURRENCY" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_secrets_are_masked(paysight_env, monkeypatch):
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_secret_value")
    s = load_settings()
    assert "sk_test_secret_value" not in s.model_dump_json()
    assert s.stripe_api_key.get_secret_value() == "sk_test_secret_value"


@pytest.mark.parametrize(
    ("var", "value", "needle"),
    [
        ("PAYSIGHT_LANDING_URL", "s3://bucket/landing", "cannot reach the object store"),
        ("PAYSIGHT_DOCUMENTS_URL", "s3://bucket/invoices", "cannot reach the object store"),
        ("PAYSIGHT_MLFLOW_ARTIFACTS_DIR", "s3://bucket/mlartifacts", "cannot reach the object"),
    ],
)
def test_an_unreachable_object_store_stops_start_up_and_leaves_no_local_look_alike(
    paysight_env, tmp_path, var, value, needle
):
    """Before, `s3://bucket/x` became the local folder `s3:/bucket/x` and events went nowhere.
    Here there are no credentials at all (and no instance metadata to ask)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
    env |= {var: value, "PAYSIGHT_DATA_DIR": str(paysight_env), "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
            "AWS_CONFIG_FILE": str(tmp_path / "none")}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "settings"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stdout
    assert f"{var}:" in proc.stderr and needle in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "s3:").exists() and not (paysight_env / "s3:").exists()


def test_local_locations_still_work_and_are_created(paysight_env, monkeypatch, tmp_path):
    monkeypatch.setenv("PAYSIGHT_LANDING_URL", str(tmp_path / "mnt" / "landing"))
    monkeypatch.setenv("PAYSIGHT_DOCUMENTS_URL", str(tmp_path / "mnt" / "docs"))
    s = load_settings()
    assert s.landing_dir.is_dir() and s.documents_dir.is_dir()
