"""Dagster resources: they choose the store; asset code never branches on the environment."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from sqlalchemy import Engine


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file (schemas raw, staging, intermediate, marts, ml). With
    ``spark_dir`` set (the spark dbt target), dbt builds staging to marts on Spark under it:
    the ingestion assets publish their raw tables there as Parquet (`publish_raw`) and
    read-only connections show Spark's tables under the same names (ingestion/warehouse.py)."""

    path: str
    spark_dir: str = ""

    @property
    def tables_dir(self) -> Path | None:
        return Path(self.spark_dir) / "warehouse" if self.spark_dir else None

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        from ingestion.warehouse import connect

        con = connect(
            self.path, read_only=read_only, tables_dir=self.tables_dir if read_only else None
        )
        try:
            yield con
        finally:
            con.close()

    def publish_raw(self, con: duckdb.DuckDBPyConnection, tables: Iterable[str]) -> list[str]:
        """Hand ``raw.<table>`` for each of ``tables`` to Spark as Parquet (nothing to do on
        the DuckDB target); returns the tables published."""
        if not self.spark_dir:
            return []
        from ingestion.raw_parquet import publish
        from orchestration.lib.dbt import raw_contract

        return publish(con, Path(self.spark_dir) / "raw", raw_contract(), tables)

    @contextmanager
    def dbt_env(self) -> Iterator[None]:
        """Point the dbt profile at this warehouse for the duration of a dbt invocation."""
        names = {"PAYSIGHT_WAREHOUSE_PATH": self.path}
        if self.spark_dir:
            names["PAYSIGHT_SPARK_DIR"] = self.spark_dir
        previous = {name: os.environ.get(name) for name in names}
        os.environ.update(names)
        try:
            yield
        finally:
            for name, value in previous.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


class LandingResource(dg.ConfigurableResource):
    """The landing zone for webhooks and bank files: a local directory, or ``s3://`` worked
    through a local spool that `landing_dir` mirrors to the bucket on every call (shipping
    what landed here, fetching what landed elsewhere)."""

    url: str
    spool: str = ""

    def landing_dir(self) -> Path:
        from billing_jobs import storage

        if storage.is_remote(self.url):
            try:
                storage.sync(self.url, Path(self.spool))
            except storage.StorageError as exc:
                raise dg.Failure(f"landing zone: {exc}") from None
            return Path(self.spool)
        if "://" in self.url and not self.url.startswith("file://"):
            raise dg.Failure(f"landing zone {self.url!r}: give a local path or s3://")
        path = Path(self.url.removeprefix("file://"))
        path.mkdir(parents=True, exist_ok=True)
        return path


class LedgerResource(dg.ConfigurableResource):
    """The billing ledger (SQLite by default, PostgreSQL in production)."""

    url: str

    def engine(self) -> Engine:
        from billing_jobs.ledger import make_engine

        return make_engine(self.url)


class ModelUnavailable(LookupError):
    """No registered champion to load (no tracking store yet, or no ``champion`` alias)."""


class MlflowResource(dg.ConfigurableResource):
    """MLflow tracking: sets the tracking URI and experiment once for every ML asset."""

    tracking_uri: str
    artifacts_dir: str
    experiment: str = "paysight"

    def setup(self) -> str:
        """Configure mlflow and return the experiment id."""
        from ml.registry import configure

        return configure(self.tracking_uri, self.experiment, artifact_location=self.artifacts_dir)

    @contextmanager
    def run(self, context: dg.AssetExecutionContext, asset_name: str) -> Iterator[object]:
        """An MLflow run named ``<asset>-<dagster run id>`` and tagged with both."""
        import mlflow

        experiment_id = self.setup()
        with mlflow.start_run(
            experiment_id=experiment_id,
            run_name=f"{asset_name}-{context.run_id[:8]}",
            tags={"dagster_asset": asset_name, "dagster_run_id": context.run_id},
        ) as active:
            yield active

    def load_champion(self, name: str) -> Any:
        """``models:/<name>@champion`` as a pyfunc model, found under this store's artifact
        directory even when the data directory has moved since it was logged."""
        from ml.registry import load_champion

        self.setup()
        return load_champion(name, artifacts_root=self.artifacts_dir)

    def load_champion_sklearn(self, name: str) -> tuple[str, Any]:
        """Load ``models:/<name>@champion`` (sklearn flavour) and return ``(version, model)``.

        The version is resolved first and loaded by number, so the version reported is the one
        loaded even if the alias moves meanwhile. Raises `ModelUnavailable` when there is no
        champion; a missing SQLite store is reported without creating one.
        """
        import mlflow

        from ml.registry import champion_version

        if self.tracking_uri.startswith("sqlite:///"):
            path = Path(self.tracking_uri.removeprefix("sqlite:///"))
            if not path.exists():
                raise ModelUnavailable(f"no MLflow tracking store at {path}")
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        current = champion_version(name)
        if current is None:
            raise ModelUnavailable(f"registered model {name!r} has no champion alias")
        from ml.registry import local_model_path

        path = local_model_path(name, "champion", artifacts_root=self.artifacts_dir)
        if str(current.version) != str(champion_version(name).version):
            raise ModelUnavailable(f"the champion of {name!r} moved while loading; retry")
        return str(current.version), mlflow.sklearn.load_model(path)


class GatewayResource(dg.ConfigurableResource):
    """Which gateway adapters are active (``PAYSIGHT_GATEWAYS``) and how to reach them."""

    gateways: list[str]
    stripe_api_key: str | None = None
    stripe_api_base: str | None = None
    razorpay_key_id: str | None = None
    razorpay_key_secret: str | None = None
    data_dir: str = "data"  # the simulated gateway's state lives in <data_dir>/gateway.sqlite

    def adapters(self) -> list[tuple[str, Any]]:
        """Every active adapter (built by `orchestration.lib.gateways.build_gateway`); the
        simulated one only once a world exists, so reading never creates an empty gateway."""
        from orchestration.lib.gateways import build_gateway, simulated_state_path

        data_dir = Path(self.data_dir)
        return [
            (
                name,
                build_gateway(
                    name,
                    data_dir=data_dir,
                    stripe_api_key=self.stripe_api_key,
                    stripe_api_base=self.stripe_api_base,
                    razorpay_key_id=self.razorpay_key_id,
                    razorpay_key_secret=self.razorpay_key_secret,
                ),
            )
            for name in self.gateways
            if name != "simulated" or simulated_state_path(data_dir).exists()
        ]
