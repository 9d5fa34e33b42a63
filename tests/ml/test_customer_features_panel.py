"""The churn training panel (marts.customer_features_monthly) never lets a feature see data from
after its snapshot: adding history after a cutoff (payment failures, a pause, a cancellation, a
new invoice, a changed current status) leaves every feature of earlier snapshots unchanged and
changes only labels. Built with dbt on the hand-made world of tests/dbt."""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from tests.dbt.conftest import build_world, gateway_settlements, load_raw, run_dbt

AS_OF = "2025-06-30"
CUTOFF = datetime(2025, 4, 1)  # a month-end snapshot instant
NOT_FEATURES = ["churned_in_horizon"]
# Two dbt runs of the panel and its parents: ~40 s idle, ~2 min on a loaded 2-core box.
pytestmark = pytest.mark.slow


def _add_future(w) -> int:
    """History dated after CUTOFF for one customer; returns that customer's id."""
    sub = next(r for r in w.rows["ledger_subscriptions"] if r["customer_id"] == 1)
    invoice = next(r for r in w.rows["ledger_invoices"] if r["customer_id"] == 1)
    later = CUTOFF + timedelta(days=3)
    for n in range(3):
        w.add(
            "ledger_payment_attempts",
            invoice_id=invoice["id"],
            attempt_number=10 + n,
            idempotency_key=f"future-{n}",
            status="failed",
            gateway="simulated",
            gateway_payment_id=f"ch_future_{n}",
            amount_minor=invoice["total_minor"],
            currency="INR",
            decline_code="insufficient_funds",
            created_at=later + timedelta(hours=n),
            finalized_at=later + timedelta(hours=n),
        )
    for kind, to_status, days in (("paused", "paused", 4), ("canceled", "canceled", 6)):
        w.add(
            "ledger_subscription_events",
            subscription_id=sub["id"],
            at=CUTOFF + timedelta(days=days),
            kind=kind,
            from_status="active",
            to_status=to_status,
            detail_json="{}",
        )
    future_invoice = dict(invoice)
    future_invoice["id"] = 9_000
    future_invoice["number"] = "FUT-1"
    for col in ("period_start", "issued_at", "finalized_at", "created_at"):
        future_invoice[col] = later
    future_invoice["period_end"] = later + timedelta(days=30)
    future_invoice["paid_at"] = None
    future_invoice["status"] = "open"
    w.rows["ledger_invoices"].append(future_invoice)
    # Present-day state columns describe "now", not the snapshot; they must not leak either.
    sub["status"], sub["canceled_at"] = "canceled", CUTOFF + timedelta(days=6)
    return 1


def _build(tmp: Path, name: str, world) -> Path:
    db = tmp / f"{name}.duckdb"
    con = duckdb.connect(str(db))
    load_raw(con, world)
    con.close()
    result = run_dbt(
        ["run", "-s", "+customer_features_monthly", "--vars", f"{{as_of: '{AS_OF}'}}"],
        db,
        tmp / f"target_{name}",
    )
    assert result.returncode == 0, result.stdout[-3000:]
    return db


def _panel(db: Path) -> pd.DataFrame:
    con = duckdb.connect(str(db), read_only=True)
    try:
        frame = con.execute("select * from marts.customer_features_monthly").df()
    finally:
        con.close()
    return frame.sort_values(["customer_id", "snapshot_at"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def panels(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    tmp = tmp_path_factory.mktemp("panel")
    base = build_world()
    gateway_settlements(base)
    future = copy.deepcopy(base)
    customer = _add_future(future)
    with ThreadPoolExecutor(2) as pool:  # two independent dbt runs
        dbs = list(pool.map(lambda a: _build(tmp, *a), (("base", base), ("future", future))))
    return _panel(dbs[0]), _panel(dbs[1]), customer


def test_panel_has_one_row_per_customer_and_month_end(panels):
    base, _, _ = panels
    assert not base.empty
    assert not base.duplicated(["customer_id", "snapshot_at"]).any()
    assert (pd.to_datetime(base["snapshot_at"]).dt.day == 1).all()
    # Labels exist only once the 30-day window after the snapshot has passed as_of.
    open_window = pd.to_datetime(base["snapshot_at"]) + pd.Timedelta(days=30) > pd.Timestamp(AS_OF)
    assert base.loc[open_window, "churned_in_horizon"].isna().all()
    assert base.loc[~open_window, "churned_in_horizon"].notna().all()


def test_features_ignore_everything_after_the_snapshot(panels):
    base, future, _ = panels
    early = pd.to_datetime(base["snapshot_at"]) <= pd.Timestamp(CUTOFF)
    keys = ["customer_id", "snapshot_at"]
    before = base[early].drop(columns=NOT_FEATURES).set_index(keys)
    after_cols = future.drop(columns=NOT_FEATURES).set_index(keys)
    assert len(before) > 0
    pd.testing.assert_frame_equal(before, after_cols.loc[before.index], check_like=True)


def test_the_future_history_is_visible_to_labels_and_later_snapshots(panels):
    base, future, customer = panels
    at_cutoff = (future["customer_id"] == customer) & (
        pd.to_datetime(future["snapshot_at"]) == pd.Timestamp(CUTOFF)
    )
    assert future.loc[at_cutoff, "churned_in_horizon"].tolist() == [1]
    base_at_cutoff = (base["customer_id"] == customer) & (
        pd.to_datetime(base["snapshot_at"]) == pd.Timestamp(CUTOFF)
    )
    assert base.loc[base_at_cutoff, "churned_in_horizon"].tolist() == [0]
    # After the cancellation the customer leaves the population.
    later = (future["customer_id"] == customer) & (
        pd.to_datetime(future["snapshot_at"]) > pd.Timestamp(CUTOFF)
    )
    assert not later.any()
