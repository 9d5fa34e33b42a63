"""Simulated charge history, its normalization to raw rows, and idempotent loading."""

from datetime import UTC, datetime

import duckdb
import pandas as pd
import pytest

from billing_jobs.money import MoneyError
from ingestion.gateway_charges import ChargeNormalizationError, charge_to_row, charges_frame
from ingestion.warehouse import table_count, upsert_dataframe
from simulation.gateway.simulated import SimulatedGateway

START, END = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC)


def test_same_seed_same_history_other_seed_differs():
    a = list(SimulatedGateway(seed=3, customers=50).charges(START, END))
    b = list(SimulatedGateway(seed=3, customers=50).charges(START, END))
    c = list(SimulatedGateway(seed=4, customers=50).charges(START, END))
    assert a == b
    assert [x["id"] for x in a] != [x["id"] for x in c]


def test_history_is_realistic():
    df = charges_frame(SimulatedGateway(seed=5, customers=400).charges(START, END), "simulated")
    assert df["charge_id"].is_unique
    assert set(df["method"]) == {"card", "upi", "netbanking", "wallet"}
    failed = df[df["status"] == "failed"]
    assert 0.03 < len(failed) / len(df) < 0.3
    assert failed["decline_code"].notna().all()
    assert (df.loc[df["status"] == "succeeded", "decline_code"].isna()).all()
    # Retries follow failures of the same invoice; hard declines are never retried.
    retried = df[df["attempt_number"] > 1]["invoice_id"]
    assert set(retried) <= set(failed["invoice_id"])
    hard = failed[failed["decline_code"].isin(["lost_card", "stolen_card", "invalid_account"])]
    for inv, attempt in zip(hard["invoice_id"], hard["attempt_number"], strict=True):
        assert not ((df["invoice_id"] == inv) & (df["attempt_number"] > attempt)).any()
    # Fees: UPI is free, cards pay ~2% plus 18% GST on the fee; settlement is after creation.
    ok = df[df["status"] == "succeeded"]
    assert (ok.loc[ok["method"] == "upi", "fee_minor"] == 0).all()
    card = ok[ok["method"] == "card"]
    assert ((card["fee_minor"] * 100 - card["amount_minor"] * 2).abs() <= 100).all()
    assert (card["fee_tax_minor"] * 100 - card["fee_minor"] * 18).abs().max() <= 100
    assert (ok["settled_at"] > ok["created_at"]).all()
    assert df["amount_minor"].dtype == "int64"


def test_window_is_respected_and_ordered():
    charges = list(SimulatedGateway(seed=1, customers=30).charges(START, END))
    created = [c["created"] for c in charges]
    assert created == sorted(created)
    assert START.timestamp() <= min(created) and max(created) < END.timestamp()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((datetime(2025, 1, 1), END), "timezone-aware"),
        ((END, START), "must be after"),
    ],
)
def test_bad_windows_are_refused(args, message):
    with pytest.raises(ValueError, match=message):
        list(SimulatedGateway(seed=1, customers=2).charges(*args))


def _charge(**over):
    base = next(iter(SimulatedGateway(seed=1, customers=1).charges(START, END)))
    return {**base, **over}


@pytest.mark.parametrize(
    ("override", "error", "message"),
    [
        ({"id": None}, ChargeNormalizationError, "id"),
        ({"amount": "100"}, ChargeNormalizationError, "amount"),
        ({"amount": -5}, ChargeNormalizationError, "amount"),
        ({"amount": 10.5}, ChargeNormalizationError, "amount"),
        ({"created": "yesterday"}, ChargeNormalizationError, "created"),
        ({"currency": "zzz"}, MoneyError, "ZZZ|zzz"),
    ],
)
def test_malformed_charges_get_a_clear_error(override, error, message):
    with pytest.raises(error, match=message):
        charge_to_row(_charge(**override), "simulated")


def test_upsert_is_idempotent_and_rejects_duplicate_keys(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    df = charges_frame(SimulatedGateway(seed=2, customers=20).charges(START, END), "simulated")
    upsert_dataframe(con, "raw", "gateway_charges", df, key="charge_id")
    upsert_dataframe(con, "raw", "gateway_charges", df, key="charge_id")
    assert table_count(con, "raw", "gateway_charges") == len(df)
    changed = df.head(1).assign(status="failed")
    upsert_dataframe(con, "raw", "gateway_charges", changed, key="charge_id")
    assert table_count(con, "raw", "gateway_charges") == len(df)
    cid = changed["charge_id"].iloc[0]
    assert con.execute(
        "select status from raw.gateway_charges where charge_id = ?", [cid]
    ).fetchone() == ("failed",)
    with pytest.raises(ValueError, match="duplicate charge_id"):
        upsert_dataframe(
            con, "raw", "gateway_charges", pd.concat([df.head(2), df.head(1)]), key="charge_id"
        )
    with pytest.raises(ValueError, match="safe SQL identifier"):
        upsert_dataframe(con, "raw", "x; drop table raw.gateway_charges", df, key="charge_id")
    assert table_count(con, "raw", "gateway_charges") == len(df)
