"""Ground truth of a simulated world, kept apart from everything detectors and models read:
`<run_dir>/sim_truth/*.parquet`, and schema `sim_truth` in a DuckDB warehouse when asked."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pandas as pd

if TYPE_CHECKING:
    from simulation.settlement import Discrepancy, Unsettled
    from simulation.world import World

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
    world: World, discrepancies: list[Discrepancy], unsettled: list[Unsettled] | None = None
) -> dict[str, pd.DataFrame]:
    """Every truth table; `unsettled`: clean charges the bank had not credited at the end."""
    customers = [
        {
            "customer_id": a.customer_id,
            "gateway_customer_id": a.gateway_customer_id,
            "segment": a.profile.segment,
            "state_code": a.profile.state_code,
            "tax_status": a.profile.tax_status,
            "method": a.profile.method,
            "issuer": a.profile.issuer,
            "mandate": a.profile.mandate,
            "signup_at": a.profile.signup_at,
            "churn_intended": a.profile.intended_churn_at is not None,
            "intended_churn_at": a.profile.intended_churn_at,
            "churned_at": a.churned_at,
            "churn_kind": a.churn_kind,
        }
        for a in world.accounts.values()
    ]
    p = world.p
    run = [{"seed": p.seed, "customers": p.customers, "months": p.months,
            "start": p.start.isoformat(), **{f"count_{k}": v for k, v in world.counts.items()}}]  # fmt: skip
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
        "run": pd.DataFrame(run),
    }  # fmt: skip


def write_truth(
    truth_dir: Path,
    world: World,
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
    Path(warehouse_path).parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(warehouse_path))
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
