"""The dbt project built over a hand-built world: reconciliation, MRR and GST marts are right."""

from __future__ import annotations

import re
import shutil
from collections import defaultdict
from datetime import date, datetime

import duckdb
import pandas as pd


def test_dbt_build_passes_every_model_test_and_unit_test(warehouse):
    out = warehouse.result.stdout[-4000:] + warehouse.result.stderr[-2000:]
    assert warehouse.result.returncode == 0, out
    assert "ERROR=0" in out and "PASS=" in out


def test_each_injected_discrepancy_gets_its_status_and_nothing_else_is_flagged(
    warehouse,
):
    recon = warehouse.query("select recon_key, status from marts.fct_reconciliation")
    statuses = dict(zip(recon.recon_key, recon.status, strict=True))
    flagged = {k: s for k, s in statuses.items() if s != "matched"}
    assert flagged == warehouse.expected_recon
    # every status of the contract occurs, and the within-SLA payment is not overdue
    assert set(statuses.values()) == set(warehouse.expected_recon.values()) | {"matched"}
    assert statuses["ch_recent"] == "matched"
    succeeded = sum(
        1 for r in warehouse.world.rows["gateway_charges"] if r["status"] == "succeeded"
    )
    assert len(statuses) == succeeded + 1  # + the ledger payment the gateway never saw


def independent_mrr(warehouse) -> pd.DataFrame:
    """MRR per subscription-month straight from the invoice rows, in plain Python."""
    world = warehouse.world
    invoices = {r["id"]: r for r in world.rows["ledger_invoices"]}
    as_of_month = date.fromisoformat(warehouse.as_of).replace(day=1)
    as_of_start = datetime.fromisoformat(warehouse.as_of)
    mrr: dict[tuple[date, int], int] = defaultdict(int)
    customer: dict[int, int] = {}
    for line in world.rows["ledger_invoice_lines"]:
        inv = invoices[line["invoice_id"]]
        if line["kind"] != "recurring" or inv["subscription_id"] is None:
            continue
        if inv["status"] not in ("open", "paid", "uncollectible"):
            continue
        months = warehouse.plans[line["plan_id"]][2]
        month = date(2024, 1, 1)
        while month <= as_of_month:
            nxt = date(month.year + month.month // 12, month.month % 12 + 1, 1)
            # measured at the month's end, or at as_of while the month is running
            edge = min(datetime(nxt.year, nxt.month, 1), as_of_start)
            if line["period_start"] < edge <= line["period_end"]:
                mrr[(month, inv["subscription_id"])] += line["taxable_minor"] // months
            month = nxt
        customer[inv["subscription_id"]] = inv["customer_id"]
    rows = []
    subs = sorted(customer)
    months = sorted({m for m, _ in mrr} | {date(2025, m, 1) for m in range(1, 7)})
    seen: set[int] = set()
    for i, month in enumerate(months):
        for sub in subs:
            cur = mrr.get((month, sub), 0)
            prev = mrr.get((months[i - 1], sub), 0) if i else 0
            if cur == 0 and prev == 0:
                continue
            if prev == 0:
                kind = "reactivation" if sub in seen else "new"
            elif cur == 0:
                kind = "churn"
            else:
                kind = (
                    {True: "expansion", False: "contraction"}[cur > prev]
                    if cur != prev
                    else ("unchanged")
                )
            if cur:
                seen.add(sub)
            rows.append((month, sub, customer[sub], cur, prev, kind))
    df = pd.DataFrame(rows, columns=["month", "sub", "customer", "mrr", "prior", "movement"])
    df["delta"] = df.mrr - df.prior
    out = df.groupby("month").apply(
        lambda g: pd.Series(
            {
                "mrr_minor": g.mrr.sum(),
                "new_minor": g.loc[g.movement == "new", "mrr"].sum(),
                "expansion_minor": g.loc[g.movement == "expansion", "delta"].sum(),
                "contraction_minor": -g.loc[g.movement == "contraction", "delta"].sum(),
                "churn_minor": g.loc[g.movement == "churn", "prior"].sum(),
                "reactivation_minor": g.loc[g.movement == "reactivation", "mrr"].sum(),
                "active_customers": g.loc[g.mrr > 0, "customer"].nunique(),
            }
        ),
        include_groups=False,
    )
    return out.reset_index().astype({c: "int64" for c in out.columns})


def test_mrr_monthly_equals_an_independent_computation(warehouse):
    dbt = warehouse.query(
        "select month, mrr_minor, new_minor, expansion_minor, contraction_minor, churn_minor,"
        " reactivation_minor, active_customers from marts.mrr_monthly order by month"
    )
    dbt["month"] = pd.to_datetime(dbt.month).dt.date
    dbt = dbt.astype({c: "int64" for c in dbt.columns if c != "month"})
    expected = independent_mrr(warehouse)
    pd.testing.assert_frame_equal(dbt.reset_index(drop=True), expected, check_dtype=False)
    # the story the world tells, month by month
    by_month = dbt.set_index("month")
    assert by_month.loc[date(2025, 4, 1), "expansion_minor"] == 100_000  # starter -> pro
    assert by_month.loc[date(2025, 4, 1), "contraction_minor"] == 100_000 - 50_000
    assert by_month.loc[date(2025, 3, 1), "churn_minor"] == 200_000
    assert by_month.loc[date(2025, 5, 1), "reactivation_minor"] == 200_000
    assert by_month.loc[date(2025, 5, 1), "churn_minor"] == 99_999
    assert by_month.loc[date(2025, 2, 1), "new_minor"] == 1_200_000 // 12


def test_mrr_roll_forward_holds_every_month(warehouse):
    m = warehouse.query("select * from marts.mrr_monthly order by currency, month")
    assert len(m) == 6
    lhs = (
        m.prior_mrr_minor
        + m.new_minor
        + m.expansion_minor
        - m.contraction_minor
        - m.churn_minor
        + m.reactivation_minor
    )
    assert (lhs == m.mrr_minor).all()
    assert (m.prior_mrr_minor.iloc[1:].to_numpy() == m.mrr_minor.iloc[:-1].to_numpy()).all()
    assert (m.arr_minor == m.mrr_minor * 12).all()


def test_gst_summary_equals_the_sum_over_invoices(warehouse):
    gst = warehouse.query(
        "select month, place_of_supply, sum(taxable_value_minor) as taxable,"
        " sum(cgst_minor) as cgst, sum(sgst_minor) as sgst, sum(igst_minor) as igst"
        " from marts.gst_summary_monthly group by 1, 2 order by 1, 2"
    )
    inv = pd.DataFrame(warehouse.world.rows["ledger_invoices"])
    inv = inv[inv.status.isin(["open", "paid", "uncollectible"])]
    inv["month"] = inv.issued_at.dt.to_period("M").dt.to_timestamp()
    expected = (
        inv.groupby(["month", "place_of_supply"])[
            ["taxable_minor", "cgst_minor", "sgst_minor", "igst_minor"]
        ]
        .sum()
        .reset_index()
    )
    expected.columns = ["month", "place_of_supply", "taxable", "cgst", "sgst", "igst"]
    gst["month"] = pd.to_datetime(gst.month)
    pd.testing.assert_frame_equal(gst, expected, check_dtype=False)
    assert gst.igst.sum() > 0 and gst.cgst.sum() == gst.sgst.sum() > 0


def test_settlements_split_gross_fee_gst_refunds(warehouse):
    s = warehouse.query("select * from marts.fct_settlements where refunds_minor > 0")
    assert len(s) == 1
    row = s.iloc[0]
    assert row.refunds_minor == 10_000 and row.adjustments_minor == -500
    assert row.net_minor == (
        row.gross_minor
        - row.fee_minor
        - row.fee_tax_minor
        - row.refunds_minor
        + row.adjustments_minor
    )
    assert row.utr.startswith("UTR")


def test_money_invariant_tests_catch_broken_marts(warehouse, tmp_path):
    """The singular tests can fail: break a copy of the built marts and run them."""
    broken = tmp_path / "broken.duckdb"
    shutil.copy(warehouse.path, broken)
    con = duckdb.connect(str(broken))
    con.execute("update marts.fct_invoices set total_minor = total_minor + 1 where invoice_id = 1")
    con.execute("update marts.fct_settlements set fee_minor = fee_minor + 1")
    con.execute(
        "update marts.mrr_monthly set churn_minor = churn_minor + 1 where month = '2025-03-01'"
    )
    con.close()
    result = warehouse.run_dbt(
        [
            "test",
            "--select",
            "assert_invoice_total_equals_lines_plus_tax",
            "assert_settlement_net_equals_gross_less_deductions",
            "assert_mrr_roll_forward",
            "--vars",
            f"{{as_of: '{warehouse.as_of}'}}",
        ],
        broken,
        tmp_path / "target",
    )
    assert result.returncode != 0
    for name in (
        "assert_invoice_total_equals_lines_plus_tax",
        "assert_settlement_net_equals_gross_less_deductions",
        "assert_mrr_roll_forward",
    ):
        assert re.search(rf"(FAIL|WARN) \d+ {name}", result.stdout), result.stdout[-3000:]
