"""A small demo world built once per test session: the simulator (real billing code against the
simulated gateway, injected discrepancies, fraud, ground truth in `sim_truth`), then every
ingestion asset and the dbt build through Dagster, as `paysight demo` does, minus the ML assets
(slow, and nothing here reads them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pandas as pd

# Small but complete: the simulator forces at least one discrepancy of each kind and one fraud
# burst into any world with enough payments; with seed 2, 60 customers x 4 months has each kind
# on a ledger payment (and a late settlement of a fraud charge) and builds in about a minute.
WORLD = {"customers": 60, "months": 4, "seed": 2, "start": "2025-01-01"}
DONE = "BUILT"


@dataclass(frozen=True)
class DemoWorld:
    """Where the world lives and the day its marts describe."""

    data_dir: Path
    warehouse_path: Path
    as_of: date
    success: bool
    checks_failed: tuple[str, ...]

    @property
    def gateway_db(self) -> Path:
        """The simulated gateway's own state (the simulator's run dir is the data dir)."""
        return self.data_dir / "gateway.sqlite"

    @property
    def end(self) -> datetime:
        """The instant the simulated history stops: midnight IST at the start of `as_of`."""
        return datetime.combine(self.as_of, time(0), tzinfo=ZoneInfo("Asia/Kolkata"))

    def query(self, sql: str) -> pd.DataFrame:
        con = duckdb.connect(str(self.warehouse_path), read_only=True)
        try:
            return con.execute(sql).df()
        finally:
            con.close()

    def env(self) -> dict[str, str]:
        """Environment variables that point paysight's settings at this world."""
        return {
            "PAYSIGHT_DATA_DIR": str(self.data_dir),
            "PAYSIGHT_WAREHOUSE_PATH": str(self.warehouse_path),
        }


def embedded_settings(data_dir: Path, **overrides: object):
    """Settings with every store under `data_dir` given explicitly (nothing from the
    developer's environment or .env leaks in); `overrides` replace any of them."""
    from orchestration.lib.env import load_settings

    stores: dict[str, object] = {
        "ledger_url": f"sqlite:///{data_dir / 'ledger.sqlite'}",
        "warehouse_path": data_dir / "warehouse.duckdb",
        "landing_url": str(data_dir / "landing"),
        "documents_url": str(data_dir / "invoices"),
        "mlflow_tracking_uri": f"sqlite:///{data_dir / 'mlflow.db'}",
        "mlflow_artifacts_dir": data_dir / "mlartifacts",
        "gateways": ["simulated"],
        "default_currency": "INR",
    }
    return load_settings(data_dir=data_dir, **(stores | overrides))


def build_and_materialize(settings, world: dict):
    """The simulated world where `settings` point, then every asset but the ML ones as of
    its end: (the built world, the Dagster result, the failed checks)."""
    from orchestration.demo import build_world

    built = build_world(settings, **world)
    result, failed = materialize_as_of(settings, built.end)
    return built, result, failed


def materialize_as_of(settings, end: date):
    """Every asset but the ML ones on `settings`' stores, as of the day `end`: (the Dagster
    result, the failed checks)."""
    import dagster as dg

    from orchestration.demo import DEMO_RUN_CONFIG
    from orchestration.reports import materialize_all_but_ml

    as_of = f"{end}T00:00:00+05:30"
    run_config = {
        **DEMO_RUN_CONFIG,
        "ops": {
            "raw_bank_settlements": {"config": {"as_of": as_of}},
            "raw_webhook_events": {"config": {"as_of": as_of}},
            "paysight_dbt_models": {"config": {"as_of": str(end)}},
        },
    }
    with dg.DagsterInstance.ephemeral() as instance:
        return materialize_all_but_ml(settings, run_config, instance)


def build_demo_world(base: Path, world: dict | None = None) -> DemoWorld:
    """Build (or reuse, when `base` already holds a finished build) the demo world."""
    params = dict(world or WORLD)
    data_dir = base / "data"
    marker = base / DONE
    settings = embedded_settings(data_dir)
    if marker.exists():
        status = marker.read_text().split("\n")
        return DemoWorld(
            data_dir,
            Path(settings.warehouse_path),
            date.fromisoformat(status[0]),
            status[1] == "True",
            tuple(x for x in status[2:] if x),
        )
    built, result, failed = build_and_materialize(settings, params)
    marker.write_text("\n".join([str(built.end), str(result.success), *failed]))
    return DemoWorld(
        data_dir, Path(settings.warehouse_path), built.end, result.success, tuple(failed)
    )
