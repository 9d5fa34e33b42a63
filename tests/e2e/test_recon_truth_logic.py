"""The truth-side expectations and the comparison themselves: they flag what they must (so the
demo-world reconciliation test can fail) and apply the contract's precedence."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pandas as pd

from tests.e2e.recon_truth import (
    Expectation,
    bank_holidays,
    compare,
    comparison_table,
    expected_statuses,
    working_days_after,
)

AS_OF = date(2025, 6, 30)  # Monday; 2025-06-28 is a 4th Saturday
HOLIDAYS = bank_holidays()


def at(day: str) -> datetime:
    return datetime.fromisoformat(f"{day}T05:00:00").replace(tzinfo=UTC)


def world(as_of: date = AS_OF) -> dict[str, Expectation]:
    charges = pd.DataFrame(
        [
            ("ok", at("2025-06-02")),
            ("dup", at("2025-06-02")),
            ("short", at("2025-06-02")),
            ("gone", at("2025-06-02")),
            ("gone_recent", at("2025-06-27")),
            ("late", at("2025-06-02")),
            ("fraud", at("2025-06-02")),
            ("fraud_late", at("2025-06-02")),
            ("fraud_dup", at("2025-06-02")),
            ("in_flight", at("2025-06-27")),
            ("stuck", at("2025-06-20")),
        ],
        columns=["gateway_payment_id", "created_at"],
    )
    disc = pd.DataFrame(
        [
            ("dup", "duplicated", 2, at("2025-06-04")),
            ("short", "short_paid", 1, at("2025-06-04")),
            ("gone", "missing", 0, None),
            ("gone_recent", "missing", 0, None),
            ("late", "late", 1, at("2025-06-12")),
            ("fraud_late", "late", 1, at("2025-06-12")),
            ("fraud_dup", "duplicated", 2, at("2025-06-04")),
        ],
        columns=["payment_id", "kind", "bank_copies", "bank_settled_at"],
    )
    fraud = pd.DataFrame(
        [("fraud", "succeeded"), ("fraud_late", "succeeded"), ("fraud_dup", "succeeded"),
         ("fraud_failed", "failed")],
        columns=["gateway_payment_id", "status"],
    )  # fmt: skip
    settled = {"ok", "dup", "short", "late", "fraud", "fraud_late", "fraud_dup"}
    return expected_statuses(
        charges, disc, fraud, as_of=as_of, holidays=HOLIDAYS, settled_ids=settled
    )


def test_working_days_skip_sundays_and_listed_saturdays():
    # Fri 27 -> Mon 30: Sat 28 (4th Saturday) and Sun 29 are off
    assert working_days_after(date(2025, 6, 27), AS_OF, HOLIDAYS) == 1
    assert working_days_after(date(2025, 6, 24), AS_OF, HOLIDAYS) == 4
    assert working_days_after(AS_OF, AS_OF, HOLIDAYS) == 0


def test_each_cause_maps_to_its_status_with_the_contract_precedence():
    got = {k: v.status for k, v in world().items()}
    assert got == {
        "ok": "matched",
        "dup": "duplicate",
        "short": "amount_mismatch",
        "gone": "unsettled_overdue",
        "gone_recent": "matched",  # missing, but the SLA has not run out by as_of
        "late": "matched",  # arrived in full, only late
        "fraud": "missing_in_ledger",
        "fraud_late": "missing_in_ledger",
        "fraud_dup": "duplicate",  # a double credit outranks the unknown charge
        "in_flight": "matched",  # paid out after the world ended, within the SLA
        "stuck": "unsettled_overdue",  # no payout and not injected: a real finding
    }
    assert world()["fraud_late"].causes == ("fraud", "late")


def test_compare_names_wrong_missing_and_unexplained_rows():
    expected = world()
    actual = {k: v.status for k, v in expected.items()}
    assert compare(actual, expected) == []
    actual["late"] = "unsettled_overdue"  # a wrong status
    del actual["dup"]  # a movement reconciliation lost
    actual["ghost"] = "missing_in_gateway"  # a flag nothing in the truth explains
    found = {(d.recon_key, d.expected, d.actual) for d in compare(actual, expected)}
    assert found == {
        ("late", "matched", "unsettled_overdue"),
        ("dup", "duplicate", None),
        ("ghost", None, "missing_in_gateway"),
    }
    table = comparison_table(actual, expected)
    assert table["rows"].sum() == len(expected) + 1
    assert set(table.columns) == {"causes", "expected", "actual", "rows"}


def test_on_an_earlier_day_late_credits_are_overdue_and_later_payments_unknown():
    got = {k: v.status for k, v in world(date(2025, 6, 11)).items()}
    assert got["late"] == "unsettled_overdue"  # its credit arrives on the 12th
    assert got["fraud_late"] == "missing_in_ledger"
    assert got["dup"] == "duplicate"
    assert "in_flight" not in got and "gone_recent" not in got  # made after that day
    assert got["gone"] == "unsettled_overdue"
