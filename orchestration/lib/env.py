"""Settings: the one module that knows the environment.

Everything configurable comes from environment variables (prefix ``PAYSIGHT_``) or a ``.env``
file in the working directory. Defaults are the embedded stores under ``data/``. A bad value
fails at start-up with a :class:`SettingsError` that names the setting.
"""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from billing_jobs import storage
from billing_jobs.money import MoneyError, normalize_currency
from orchestration.lib.paths import PROJECT_ROOT

KNOWN_GATEWAYS = ("simulated", "stripe", "razorpay")
# dbt_project/profiles.yml outputs the platform can build and read (see _runnable_target).
RUNNABLE_DBT_TARGETS = ("dev", "spark")


class SettingsError(RuntimeError):
    """A setting is missing or invalid; the message names it and says what is expected."""


def _env_name(field: str) -> str:
    alias = Settings.model_fields[field].alias
    return alias or f"PAYSIGHT_{field.upper()}"


class Settings(BaseSettings):
    """Runtime configuration. Paths default to the embedded stores under ``data_dir``."""

    model_config = SettingsConfigDict(
        env_prefix="PAYSIGHT_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    data_dir: Path = Field(default=PROJECT_ROOT / "data")
    ledger_url: str | None = None
    warehouse_path: Path | None = None
    landing_url: str | None = None
    documents_url: str | None = None
    mlflow_tracking_uri: str | None = Field(default=None, alias="MLFLOW_TRACKING_URI")
    mlflow_artifacts_dir: str | None = None  # a local directory or s3://bucket/prefix
    gateways: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["simulated"])
    default_currency: str = "INR"
    timezone: str = "Asia/Kolkata"
    dbt_target: str = "dev"
    spark_dir: Path | None = None  # the spark target's tables and catalog (default data/spark)
    smtp_url: SecretStr | None = None

    stripe_api_key: SecretStr | None = Field(default=None, alias="STRIPE_API_KEY")
    stripe_webhook_secret: SecretStr | None = Field(default=None, alias="STRIPE_WEBHOOK_SECRET")
    stripe_api_base: str | None = Field(default=None, alias="STRIPE_API_BASE")
    razorpay_key_id: str | None = Field(default=None, alias="RAZORPAY_KEY_ID")
    razorpay_key_secret: SecretStr | None = Field(default=None, alias="RAZORPAY_KEY_SECRET")
    razorpay_webhook_secret: SecretStr | None = Field(default=None, alias="RAZORPAY_WEBHOOK_SECRET")
    # No default: `paysight demo` / `simulate` generate one per installation (see
    # `ensure_simulated_webhook_secret`); production sets it or leaves the source disabled.
    simulated_webhook_secret: SecretStr | None = None
    # Webhook sources the receiver serves (default: the active gateways); each needs its secret.
    webhook_sources: Annotated[list[str] | None, NoDecode] = None
    webhook_rate_per_s: float | None = Field(default=None, gt=0)
    webhook_burst: int | None = Field(default=None, ge=1)
    webhook_invalid_rate_per_s: float | None = Field(default=None, gt=0)
    webhook_header_timeout_s: float = Field(default=5.0, gt=0, le=600)
    webhook_body_timeout_s: float = Field(default=10.0, gt=0, le=600)
    webhook_keep_alive_s: float = Field(default=5.0, gt=0, le=600)
    webhook_max_connections: int = Field(default=1000, ge=1, le=1_000_000)
    webhook_max_json_depth: int = Field(default=64, ge=2, le=512)

    @field_validator("gateways", "webhook_sources", mode="before")
    @classmethod
    def _split_gateways(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip().lower() for part in value.split(",") if part.strip()]
        return value

    @field_validator("gateways")
    @classmethod
    def _known_gateways(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one gateway is required, e.g. 'simulated'")
        unknown = [g for g in value if g not in KNOWN_GATEWAYS]
        if unknown:
            raise ValueError(f"unknown gateway(s) {unknown}; choose from {list(KNOWN_GATEWAYS)}")
        return value

    @field_validator("webhook_sources")
    @classmethod
    def _known_sources(cls, value: list[str] | None) -> list[str] | None:
        unknown = [g for g in value or [] if g not in KNOWN_GATEWAYS]
        if unknown:
            raise ValueError(f"unknown webhook source(s) {unknown}; choose {list(KNOWN_GATEWAYS)}")
        return value

    @field_validator("default_currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        try:
            return normalize_currency(value)
        except MoneyError as exc:
            raise ValueError(str(exc)) from exc

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}, e.g. 'Asia/Kolkata'") from exc
        return value

    @field_validator("ledger_url")
    @classmethod
    def _ledger_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        scheme = urlparse(value).scheme.split("+")[0]
        if scheme not in {"sqlite", "postgresql", "postgres"}:
            raise ValueError(
                f"expected a sqlite:/// or postgresql+psycopg:// URL, got scheme {scheme!r}"
            )
        return value

    @field_validator("landing_url", "documents_url", mode="before")
    @classmethod
    def _location(cls, value: object) -> object:
        if isinstance(value, str) and "://" in value:
            kind = storage.scheme(value)
            if kind == "file":
                return value.split("://", 1)[1]
            if kind != storage.S3:
                raise ValueError(
                    f"{kind}:// locations are not supported: give a local path or "
                    "s3://bucket/prefix"
                )
            try:
                storage.split_s3(value)
            except storage.StorageError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("mlflow_artifacts_dir", mode="before")
    @classmethod
    def _artifacts(cls, value: object) -> object:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, str) and "://" in value:
            if storage.scheme(value) != storage.S3:
                raise ValueError(
                    "must be a local directory or s3://bucket/prefix (the artifact root of "
                    "the experiment paysight creates); for another store run an MLflow tracking "
                    "server with its own --artifacts-destination and set MLFLOW_TRACKING_URI"
                )
            try:
                storage.split_s3(value)
            except storage.StorageError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("dbt_target")
    @classmethod
    def _runnable_target(cls, value: str) -> str:
        if value not in RUNNABLE_DBT_TARGETS:
            raise ValueError(
                f"unknown dbt target {value!r}; choose from {list(RUNNABLE_DBT_TARGETS)}"
            )
        if value == "spark":
            _check_spark()
        return value

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        data = self.data_dir.expanduser().resolve()
        self.data_dir = data
        if self.ledger_url is None:
            self.ledger_url = f"sqlite:///{data / 'ledger.sqlite'}"
        if self.warehouse_path is None:
            self.warehouse_path = data / "warehouse.duckdb"
        if self.landing_url is None:
            self.landing_url = str(data / "landing")
        if self.documents_url is None:
            self.documents_url = str(data / "invoices")
        if self.mlflow_artifacts_dir is None:
            self.mlflow_artifacts_dir = str(data / "mlartifacts")
        if self.mlflow_tracking_uri is None:
            self.mlflow_tracking_uri = f"sqlite:///{data / 'mlflow.db'}"
        if self.spark_dir is None:
            self.spark_dir = data / "spark"
        self.spark_dir = self.spark_dir.expanduser().resolve()
        return self

    # -- derived ----------------------------------------------------------------------
    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def spark_tables_dir(self) -> Path | None:
        """Where Spark writes the marts (the spark target), else None (DuckDB holds them)."""
        if self.dbt_target != "spark":
            return None
        assert self.spark_dir is not None
        return self.spark_dir / "warehouse"

    @property
    def landing_dir(self) -> Path:
        """The local landing directory: the landing zone itself, or for an ``s3://`` landing
        zone the spool mirrored to it (``<data_dir>/spool/landing``)."""
        if storage.is_remote(self.landing_url):
            return self.data_dir / "spool" / "landing"
        return Path(self.landing_url or "")

    @property
    def documents_dir(self) -> Path:
        """The local documents folder (for ``s3://``, ``<data_dir>/spool/documents``)."""
        if storage.is_remote(self.documents_url):
            return self.data_dir / "spool" / "documents"
        return Path(self.documents_url or "")

    def sync_location(self, field: str) -> storage.MirrorReport | None:
        """Mirror ``landing_url`` or ``documents_url`` between its local directory and its
        bucket (nothing to do for a local location). A store error names the setting."""
        local = self.landing_dir if field == "landing_url" else self.documents_dir
        try:
            return storage.sync(getattr(self, field), local)
        except storage.StorageError as exc:
            raise SettingsError(f"{_env_name(field)}: {exc}") from None

    @property
    def enabled_webhook_sources(self) -> list[str]:
        """The sources the receiver serves: PAYSIGHT_WEBHOOK_SOURCES, or the active gateways
        (the default, `simulated`, is the demo installation)."""
        return list(self.webhook_sources if self.webhook_sources is not None else self.gateways)

    @property
    def simulated_secret_path(self) -> Path:
        return self.data_dir / "secrets" / "simulated_webhook_secret"

    def webhook_secret_values(self) -> dict[str, str | None]:
        """Each source's configured secret (a `new,old` list during rotation), or None. The
        simulated source falls back to this installation's generated secret, if there is one."""
        simulated = self.simulated_webhook_secret
        raw_simulated = simulated.get_secret_value() if simulated else None
        if not raw_simulated and self.simulated_secret_path.is_file():
            raw_simulated = self.simulated_secret_path.read_text().strip()
        stripe, razorpay = self.stripe_webhook_secret, self.razorpay_webhook_secret
        return {
            "stripe": stripe.get_secret_value() if stripe else None,
            "razorpay": razorpay.get_secret_value() if razorpay else None,
            "simulated": raw_simulated or None,
        }

    def ensure_dirs(self) -> None:
        """Create the embedded store directories; fail with the setting's name if impossible."""
        checks: list[tuple[str, Path]] = [("data_dir", self.data_dir)]
        assert self.warehouse_path is not None
        checks.append(("warehouse_path", self.warehouse_path.parent))
        checks.append(("landing_url", self.landing_dir))
        checks.append(("documents_url", self.documents_dir))
        if self.dbt_target == "spark":
            assert self.spark_dir is not None
            checks.append(("spark_dir", self.spark_dir))
        if self.ledger_url and self.ledger_url.startswith("sqlite:///"):
            checks.append(("ledger_url", Path(self.ledger_url.removeprefix("sqlite:///")).parent))
        for field, path in checks:
            _ensure_writable_dir(_env_name(field), path)
        for field in ("landing_url", "documents_url", "mlflow_artifacts_dir"):
            try:
                storage.check_location(str(getattr(self, field)), _env_name(field))
            except storage.StorageError as exc:
                raise SettingsError(str(exc)) from None


def _check_spark() -> None:
    """The spark target starts a Spark session inside dbt: pyspark and a Java runtime."""
    import importlib.util
    import shutil

    if importlib.util.find_spec("pyspark") is None:
        raise ValueError(
            "the spark target needs pyspark and dbt-spark: install the 'spark' extra "
            "(pip install 'paysight[spark]')"
        )
    java_home = os.environ.get("JAVA_HOME")
    if not (java_home and (Path(java_home) / "bin" / "java").exists()) and not shutil.which("java"):
        raise ValueError(
            "the spark target needs a Java runtime (17): none on PATH or at JAVA_HOME "
            "(Debian: apt-get install -y openjdk-17-jre-headless)"
        )


def _ensure_writable_dir(setting: str, path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise SettingsError(f"{setting}: {path} exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SettingsError(f"{setting}: cannot create directory {path}: {exc.strerror}") from exc
    if not os.access(path, os.W_OK):
        raise SettingsError(f"{setting}: directory {path} is not writable")


def _explain(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        field = str(err["loc"][0]) if err.get("loc") else "?"
        name = _env_name(field) if field in Settings.model_fields else field
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{name}: {msg} (got {err.get('input')!r})")
    return "invalid settings:\n  " + "\n  ".join(lines)


def load_settings(*, ensure_dirs: bool = True, **overrides: object) -> Settings:
    """Read and validate settings; raise SettingsError naming the bad setting."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(_explain(exc)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f".env: cannot read the settings file: {exc}") from None
    except Exception as exc:  # pydantic-settings raises SettingsError for undecodable env values
        raise SettingsError(f"invalid settings: {exc}") from None
    if ensure_dirs:
        settings.ensure_dirs()
    return settings


def ensure_simulated_webhook_secret(settings: Settings) -> str:
    """This installation's secret for the simulated webhook source: PAYSIGHT_SIMULATED_WEBHOOK_
    SECRET when set, else generated once into `<data_dir>/secrets/simulated_webhook_secret`
    (mode 0600). Only the demo and simulation commands call this; nothing ships a default."""
    given = settings.simulated_webhook_secret
    if given is not None and given.get_secret_value().strip():
        return given.get_secret_value().strip()
    path = settings.simulated_secret_path
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    value = "whsec_" + secrets.token_hex(24)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value


def config_instant(value: str | None, field: str = "as_of") -> datetime:
    """A job or check's `as_of` config value as an instant (the one rule,
    `billing_jobs.inputs.instant`: ISO 8601 with a UTC offset, naive refused), or now when
    unset. A bad value fails the run with the reason."""
    import dagster as dg

    from billing_jobs.inputs import InputError, instant

    if not value:
        return datetime.now(UTC)
    try:
        return instant(value, field)
    except InputError as exc:
        raise dg.Failure(str(exc)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings (cached). Tests call ``get_settings.cache_clear()``."""
    return load_settings()
