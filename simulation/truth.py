"""Ground truth of a simulated world, kept apart from everything detectors and models read:
`<run_dir>/sim_truth/*.parquet`, and schema `sim_truth` in a DuckDB warehouse when asked."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ingestion.warehouse import connect
from simulation.fraud import FraudCharge
from simulation.settlement import Discrepancy, Unsettled


@dataclass(frozen=True)
class WorldRecord:
    """What a finished world knows that no detector may read (`World.record()` builds it):
    one row per customer, the churns and behaviour signals, the fraud charges, the run."""

    customers: list[dict[str, Any]]
    churns: list[dict[str, Any]]
    signals: list[dict[str, Any]]
    fraud: list[FraudCharge]
    run: dict[str, Any]


TABLES = ("customers", "churn_events", "behaviour_signals", "fraud_transactions",
          "settlement_discrepancies", "unsettled_payments", "run")  # fmt: skip
UNSETTLED_COLUMNS = ["payment_id", "payment_created_at", "in_ledger", "currency",
                     "expected_net_minor", "expected_settled_at", "settlement_id"]  # fmt: skip


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=columns)
    for c in df.columns:
        if c.endswith("_at"):
            df[c] = pd.to_datetime(df[c], utc=True)
    return df


def truth_frames(
    world: WorldRecord, discrepancies: list[Discrepancy], unsettled: list[Unsettled] | None = None
) -> dict[str, pd.DataFrame]:
    """Every truth table; `unsettled`: clean charges the bank had not credited at the end."""
    customers = world.customers
    return {
        "customers": _frame(customers, list(customers[0]) if customers else ["customer_id"]),
        "churn_events": _frame(world.churns, ["customer_id", "subscription_id", "churned_at",
                                              "kind", "on_purpose", "intended_churn_at"]),
        "behaviour_signals": _frame(world.signals, ["customer_id", "subscription_id", "at",
                                                    "kind", "precedes_churn"]),
        "fraud_transactions": _frame([asdict(f) for f in world.fraud], [
            "burst_id", "gateway_payment_id", "gateway_customer_id", "customer_id", "at",
            "amount_minor", "currency", "status", "plan_price_minor"]),
        "settlement_discrepancies": _frame([asdict(d) for d in discrepancies], [
            "payment_id", "settlement_id", "kind", "expected_net_minor", "bank_net_minor",
            "expected_settled_at", "bank_settled_at", "bank_copies", "file",
            "payment_created_at"]),
        "unsettled_payments": _frame([asdict(u) for u in unsettled or []], UNSETTLED_COLUMNS),
        "run": pd.DataFrame([world.run]),
    }  # fmt: skip


def write_truth(
    truth_dir: Path,
    world: WorldRecord,
    discrepancies: list[Discrepancy],
    warehouse_path: str | Path | None = None,
    unsettled: list[Unsettled] | None = None,
) -> dict[str, Path]:
    """Parquet per table; also `sim_truth.<table>` in the DuckDB file when given."""
    truth_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, df in truth_frames(world, discrepancies, unsettled).items():
        path = truth_dir / f"{name}.parquet"
        df.to_parquet(path, index=False)
        paths[name] = path
    if warehouse_path is not None:
        load_truth(truth_dir, warehouse_path)
    return paths


def load_truth(truth_dir: str | Path, warehouse_path: str | Path) -> list[str]:
    """(Re)create schema `sim_truth` in the DuckDB warehouse from the parquet files."""
    con = connect(warehouse_path)
    try:
        con.execute("create schema if not exists sim_truth")
        names = []
        for name in TABLES:
            path = Path(truth_dir) / f"{name}.parquet"
            con.execute(
                f"create or replace table sim_truth.{name} as select * from read_parquet(?)",
                [str(path)],
            )
            names.append(f"sim_truth.{name}")
        return names
    finally:
        con.close()
