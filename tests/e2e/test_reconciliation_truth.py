"""Reconciliation on a simulated world against the simulator's ground truth (`sim_truth`, which
no model reads): every injected discrepancy gets its status, and nothing else is flagged."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from tests.e2e.recon_truth import (
    bank_holidays,
    compare,
    comparison_table,
    expected_statuses,
    gateway_charges,
    paid_out_ids,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DBT_DIR = REPO_ROOT / "dbt_project"

pytestmark = pytest.mark.slow  # builds a demo world once per session (about a minute idle)


def truth_and_actual(world, as_of=None, warehouse=None):
    """Expected statuses from the truth on `as_of` (default: the world's end), and the statuses
    in `warehouse` (default: the world's own warehouse)."""
    as_of = as_of or world.as_of
    discrepancies = world.query("select * from sim_truth.settlement_discrepancies")
    fraud = world.query("select * from sim_truth.fraud_transactions")
    expected = expected_statuses(
        gateway_charges(world.gateway_db),
        discrepancies,
        fraud,
        as_of=as_of,
        holidays=bank_holidays(),
        settled_ids=paid_out_ids(world.gateway_db, world.end, as_of),
    )
    con = duckdb.connect(str(warehouse or world.warehouse_path), read_only=True)
    try:
        recon = con.execute("select recon_key, status from marts.fct_reconciliation").df()
    finally:
        con.close()
    actual = dict(zip(recon.recon_key, recon.status, strict=True))
    return expected, actual, discrepancies, fraud


def test_the_demo_world_builds_and_every_dbt_check_passes(demo_world):
    assert demo_world.success
    assert demo_world.checks_failed == ()


def test_the_handed_over_ledger_is_not_behind_the_gateway(demo_world):
    # A payment the gateway resolved before the end but the ledger still holds as pending
    # would show here as a gateway success the ledger lacks (missing_in_ledger): the world
    # ends with a janitor pass, and its invariants check that nothing was left behind.
    from simulation.invariants import check_world

    ledger = demo_world.data_dir / "ledger.sqlite"
    assert check_world(f"sqlite:///{ledger}", demo_world.gateway_db)["attempts"] > 0


def test_reconciliation_agrees_with_sim_truth_on_every_money_movement(demo_world):
    expected, actual, _, _ = truth_and_actual(demo_world)
    disagreements = compare(actual, expected)
    table = comparison_table(actual, expected).to_string(index=False)
    assert disagreements == [], f"{len(disagreements)} disagreements\n{table}"


def test_the_world_exercises_every_injected_kind_and_fraud(demo_world):
    """Guard against a vacuous pass: each kind of discrepancy sits on a ledger payment (where it
    decides the status alone), fraud charges reached the gateway, and both kinds of cause
    overlap at least once (a fraud charge whose settlement was also tampered with)."""
    expected, _, discrepancies, fraud = truth_and_actual(demo_world)
    alone = {e.causes[0] for e in expected.values() if len(e.causes) == 1}
    assert {"duplicated", "short_paid", "missing", "late", "fraud", "none"} <= alone
    assert any(len(e.causes) > 1 for e in expected.values())
    assert set(discrepancies.payment_id) <= set(expected)
    assert set(fraud.loc[fraud.status == "succeeded", "gateway_payment_id"]) <= set(expected)
    statuses = {e.status for e in expected.values()}
    assert {"duplicate", "missing_in_ledger", "amount_mismatch", "unsettled_overdue"} <= statuses


def test_a_late_settlement_is_matched_but_its_age_shows_the_delay(demo_world):
    """A late line arrived before as_of: the money is all there (matched); its age is the
    settlement delay, longer than the gateway's T+2."""
    late = demo_world.query(
        """select r.status, r.age_days from sim_truth.settlement_discrepancies d
           join marts.fct_reconciliation r on r.recon_key = d.payment_id
           where d.kind = 'late' and d.bank_copies > 0 and r.ledger_payment_id is not null"""
    )
    assert len(late) >= 1
    assert set(late.status) == {"matched"}
    assert (late.age_days >= 5).all(), late


def test_a_replay_while_a_settlement_is_late_flags_it_and_agrees_with_the_truth(
    demo_world, tmp_path
):
    """Point in time: rebuild reconciliation for the day before a late bank credit arrived.
    The late payment is unsettled then (overdue once the SLA ran out), and every other movement
    known that day still agrees with the truth as of that day."""
    late = demo_world.query(
        """select d.payment_id, d.bank_settled_at from sim_truth.settlement_discrepancies d
           join marts.fct_reconciliation r on r.recon_key = d.payment_id
           where d.kind = 'late' and d.bank_copies > 0 and r.ledger_payment_id is not null
           order by d.bank_settled_at limit 1"""
    )
    assert len(late) == 1
    key = late.payment_id[0]
    as_of = pd.Timestamp(late.bank_settled_at[0]).tz_convert("UTC").date() - timedelta(days=1)
    replay = tmp_path / "replay.duckdb"
    shutil.copyfile(demo_world.warehouse_path, replay)
    env = {**os.environ, "PAYSIGHT_WAREHOUSE_PATH": str(replay), "PAYSIGHT_DBT_TARGET": "dev"}
    result = subprocess.run(
        [str(REPO_ROOT / ".venv" / "bin" / "dbt"), "run", "--select",
         "int_bank_settlements_aggregated", "fct_reconciliation",
         "--vars", f"{{as_of: '{as_of}'}}", "--project-dir", str(DBT_DIR),
         "--profiles-dir", str(DBT_DIR), "--target-path", str(tmp_path / "target")],
        env=env, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    expected, actual, _, _ = truth_and_actual(demo_world, as_of=as_of, warehouse=replay)
    assert expected[key].status == "unsettled_overdue"
    assert actual[key] == "unsettled_overdue"
    disagreements = compare(actual, expected)
    table = comparison_table(actual, expected).to_string(index=False)
    assert disagreements == [], f"as of {as_of}: {len(disagreements)} disagreements\n{table}"
