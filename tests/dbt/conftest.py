"""A small, hand-built but realistic warehouse for the dbt project, and one `dbt build` over it.

Five customers and five subscriptions (monthly, quarterly, yearly) from January to June 2025,
one invoice per period, payments through three gateways, bank settlement files with fees,
GST on fees, a refund and an adjustment, and one injected reconciliation discrepancy of
each kind. `EXPECTED_RECON` is the ground truth the marts must reproduce.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DBT_DIR = REPO_ROOT / "dbt_project"
AS_OF = "2025-06-30"  # a Monday; 2025-06-28 is a 4th Saturday (bank holiday)
SUPPLIER_STATE = "29"

# Injected discrepancies: gateway payment id -> status. Every other money movement matches.
EXPECTED_RECON = {
    "ch_missing_gw": "missing_in_gateway",
    "ch_missing_ledger": "missing_in_ledger",
    "ch_short_paid": "amount_mismatch",
    "ch_usd": "currency_mismatch",
    "ch_fee_off": "fee_mismatch",
    "ch_late": "unsettled_overdue",
    "ch_dup_bank": "duplicate",
    "ch_double_charge": "duplicate",
}


def raw_contract() -> dict[str, list[tuple[str, str]]]:
    """Table -> [(column, type)] from the raw source YAML (the contract ingestion writes)."""
    doc = yaml.safe_load((DBT_DIR / "models" / "staging" / "_raw__sources.yml").read_text())
    return {
        t["name"]: [(c["name"], c["data_type"]) for c in t["columns"]]
        for t in doc["sources"][0]["tables"]
    }


def fee_of(amount: int) -> tuple[int, int]:
    """A 2% gateway fee and 18% GST on it, in whole minor units."""
    fee = amount * 2 // 100
    return fee, fee * 18 // 100


def add_months(d: datetime, months: int) -> datetime:
    m = d.month - 1 + months
    return d.replace(year=d.year + m // 12, month=m % 12 + 1)


@dataclass
class World:
    """Rows per raw table, built by small helpers so each case reads as a sentence."""

    rows: dict[str, list[dict]] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)

    def add(self, table: str, **row: object) -> int:
        """Append a row; returns its id (a running number unless one is given)."""
        self.ids[table] = self.ids.get(table, 0) + 1
        row.setdefault("id", self.ids[table])
        self.rows.setdefault(table, []).append(row)
        return self.ids[table] if not isinstance(row["id"], int) else row["id"]


PLANS = {  # plan id -> (code, interval, months, price)
    1: ("starter", "month", 1, 100_000),
    2: ("pro", "month", 1, 200_000),
    3: ("pro_yearly", "year", 12, 1_200_000),
    4: ("team_quarterly", "quarter", 3, 300_000),
    5: ("team_quarterly_small", "quarter", 3, 150_001),  # floor(150001 / 3) = 50000
    6: ("lite", "month", 1, 99_999),
}


def build_world() -> World:
    w = World()
    t0 = datetime(2024, 12, 1)
    for pid, (code, interval, _, price) in PLANS.items():
        w.add(
            "ledger_plans",
            id=pid,
            code=code,
            version=1,
            product_id=1,
            name=code,
            interval=interval,
            interval_count=1,
            trial_days=0,
            pricing_model="flat",
            is_addon=False,
            fingerprint=f"fp{pid}",
            is_current=True,
            created_at=t0,
        )
        w.add(
            "ledger_prices", plan_id=pid, currency="INR", unit_amount_minor=price, tiers_json=None
        )
    states = {1: "29", 2: "29", 3: "27", 4: "29", 5: "07"}
    for cid, state in states.items():
        w.add(
            "ledger_customers",
            id=cid,
            external_ref=f"cus_{cid}",
            name=f"Customer {cid}",
            email=f"c{cid}@example.in",
            address_line="1 MG Road",
            city="City",
            postal_code="560001",
            country="IN",
            state_code=state,
            gstin=f"{state}ABCDE1234F1Z{cid}" if cid % 2 else None,
            tax_status="regular",
            locale="en_IN",
            currency="INR",
            created_at=t0,
        )

    # (subscription, customer, [(period_start, plan_id)], final status)
    subs = [
        (
            1,
            1,
            [(datetime(2025, 1, 15), 1)] + [(None, 1)] * 2 + [(None, 2)] * 3,
            "active",
        ),  # up Apr
        (2, 2, [(datetime(2025, 2, 10), 3)], "active"),  # yearly from Feb
        (
            3,
            3,
            [(datetime(2025, 1, 1), 2), (None, 2), (datetime(2025, 5, 1), 2), (None, 2)],
            "active",
        ),  # churns in March, reactivates in May
        (4, 4, [(datetime(2025, 1, 1), 4), (None, 5)], "active"),  # contraction in April
        (5, 5, [(datetime(2025, 3, 5), 6), (None, 6)], "canceled"),  # churn in May
    ]
    invoice_no = 0
    for sid, cid, periods, status in subs:
        w.add(
            "ledger_subscriptions",
            id=sid,
            customer_id=cid,
            status=status,
            currency="INR",
            interval=PLANS[periods[-1][1]][1],
            interval_count=1,
            billing_anchor=periods[0][0],
            period_index=len(periods),
            current_period_start=periods[0][0],
            current_period_end=periods[0][0],
            billed_period_start=None,
            trial_end=None,
            next_action_at=periods[0][0],
            cancel_at_period_end=False,
            canceled_at=datetime(2025, 5, 5) if status == "canceled" else None,
            paused_at=None,
            coupon_id=None,
            coupon_periods_used=0,
            pending_change_json=None,
            created_at=periods[0][0],
        )
        w.add("ledger_subscription_items", subscription_id=sid, plan_id=periods[-1][1], quantity=1)
        w.add(
            "ledger_subscription_events",
            subscription_id=sid,
            at=periods[0][0],
            kind="created",
            from_status=None,
            to_status="active",
            detail_json="{}",
        )
        start = None
        prev_plan = None
        for p_start, plan_id in periods:
            start = p_start or start
            months = PLANS[plan_id][2]
            end = add_months(start, months)
            if prev_plan is not None and prev_plan != plan_id:
                w.add(
                    "ledger_subscription_events",
                    subscription_id=sid,
                    at=start,
                    kind="plan_changed",
                    from_status="active",
                    to_status="active",
                    detail_json="{}",
                )
            prev_plan = plan_id
            invoice_no += 1
            amount = PLANS[plan_id][3]
            intra = states[cid] == SUPPLIER_STATE
            half = amount * 900 // 10_000
            cgst, sgst, igst = (half, half, 0) if intra else (0, 0, 2 * half)
            tax = cgst + sgst + igst
            open_invoice = sid == 1 and start >= datetime(2025, 6, 1)
            iid = w.add(
                "ledger_invoices",
                customer_id=cid,
                subscription_id=sid,
                kind="recurring",
                status="open" if open_invoice else "paid",
                number=f"INV/2526/{invoice_no:05d}",
                financial_year="2526",
                currency="INR",
                period_start=start,
                period_end=end,
                issued_at=start,
                subtotal_minor=amount,
                discount_minor=0,
                taxable_minor=amount,
                cgst_minor=cgst,
                sgst_minor=sgst,
                igst_minor=igst,
                tax_minor=tax,
                total_minor=amount + tax,
                credit_applied_minor=0,
                amount_due_minor=amount + tax,
                amount_paid_minor=0 if open_invoice else amount + tax,
                amount_credited_minor=0,
                supplier_gstin=f"{SUPPLIER_STATE}AAAAA0000A1Z5",
                customer_gstin=None,
                place_of_supply=states[cid],
                tax_regime="intra" if intra else "inter",
                reverse_charge=False,
                finalized_at=start,
                paid_at=None if open_invoice else start,
                voided_at=None,
                created_at=start,
            )
            w.add(
                "ledger_invoice_lines",
                invoice_id=iid,
                position=1,
                kind="recurring",
                description=PLANS[plan_id][0],
                plan_id=plan_id,
                sac="998314",
                quantity=1,
                amount_minor=amount,
                discount_minor=0,
                taxable_minor=amount,
                tax_rate_bp=1800,
                cgst_minor=cgst,
                sgst_minor=sgst,
                igst_minor=igst,
                period_start=start,
                period_end=end,
            )
            if not open_invoice:
                pay(w, iid, cid, amount + tax, start + timedelta(hours=10), gw_index=iid)
            start = end
    # A proration invoice (not MRR) and a void invoice (no tax liability, not MRR).
    for status in ("paid", "void"):
        iid = w.add(
            "ledger_invoices",
            customer_id=1,
            subscription_id=1,
            kind="proration",
            status=status,
            number=None,
            financial_year="2526",
            currency="INR",
            period_start=datetime(2025, 4, 20),
            period_end=datetime(2025, 5, 15),
            issued_at=datetime(2025, 4, 20),
            subtotal_minor=10_000,
            discount_minor=0,
            taxable_minor=10_000,
            cgst_minor=900,
            sgst_minor=900,
            igst_minor=0,
            tax_minor=1800,
            total_minor=11_800,
            credit_applied_minor=0,
            amount_due_minor=11_800,
            amount_paid_minor=0,
            amount_credited_minor=0,
            supplier_gstin=None,
            customer_gstin=None,
            place_of_supply="29",
            tax_regime="intra",
            reverse_charge=False,
            finalized_at=None,
            paid_at=None,
            voided_at=None,
            created_at=datetime(2025, 4, 20),
        )
        w.add(
            "ledger_invoice_lines",
            invoice_id=iid,
            position=1,
            kind="proration",
            description="upgrade",
            plan_id=2,
            sac="998314",
            quantity=1,
            amount_minor=10_000,
            discount_minor=0,
            taxable_minor=10_000,
            tax_rate_bp=1800,
            cgst_minor=900,
            sgst_minor=900,
            igst_minor=0,
            period_start=datetime(2025, 4, 20),
            period_end=datetime(2025, 5, 15),
        )
    inject_discrepancies(w)
    return w


GATEWAYS = ("simulated", "stripe", "razorpay")


def pay(
    w: World,
    invoice_id: int,
    customer_id: int,
    amount: int,
    at: datetime,
    *,
    gw_index: int,
    gpid: str | None = None,
    fail_first: bool = False,
    ledger: bool = True,
    gateway: bool = True,
    bank: str = "normal",
    gw_amount: int | None = None,
    gw_currency: str = "INR",
) -> str:
    """Record a payment in ledger, gateway and bank (each side optional or altered)."""
    gpid = gpid or f"ch_{invoice_id}"
    gw = GATEWAYS[gw_index % 3]
    attempt = 1
    if fail_first or invoice_id % 4 == 0:  # a soft decline, recovered a day later
        fid = f"{gpid}_declined"
        w.add(
            "ledger_payment_attempts",
            invoice_id=invoice_id,
            attempt_number=1,
            idempotency_key=f"inv{invoice_id}-1",
            status="failed",
            gateway=gw,
            gateway_payment_id=fid,
            amount_minor=amount,
            currency="INR",
            decline_code="insufficient_funds",
            created_at=at - timedelta(days=1),
            finalized_at=at - timedelta(days=1),
        )
        charge(
            w,
            fid,
            gw,
            customer_id,
            invoice_id,
            amount,
            "INR",
            "failed",
            at - timedelta(days=1),
            attempt=1,
            decline="insufficient_funds",
        )
        attempt = 2
    if ledger:
        w.add(
            "ledger_payment_attempts",
            invoice_id=invoice_id,
            attempt_number=attempt,
            idempotency_key=f"inv{invoice_id}-{attempt}-{gpid}",
            status="succeeded",
            gateway=gw,
            gateway_payment_id=gpid,
            amount_minor=amount,
            currency="INR",
            decline_code=None,
            created_at=at,
            finalized_at=at,
        )
    gw_amount = amount if gw_amount is None else gw_amount
    if gateway:
        charge(
            w,
            gpid,
            gw,
            customer_id,
            invoice_id,
            gw_amount,
            gw_currency,
            "succeeded",
            at,
            attempt=attempt,
        )
    if bank != "none":
        fee, fee_tax = fee_of(gw_amount)
        gross = gw_amount - 1000 if bank == "short" else gw_amount
        if bank == "fee_off":
            fee += 50
        for _ in range(2 if bank == "twice" else 1):
            bank_line(w, gpid, gross, fee, fee_tax, gw_currency, at + timedelta(days=1))
    return gpid


def charge(
    w: World,
    gpid: str,
    gw: str,
    customer_id: int,
    invoice_id: int,
    amount: int,
    currency: str,
    status: str,
    at: datetime,
    *,
    attempt: int,
    decline: str | None = None,
) -> None:
    fee, fee_tax = fee_of(amount) if status == "succeeded" else (0, 0)
    w.add(
        "gateway_charges",
        charge_id=gpid,
        gateway=gw,
        customer_id=f"cus_{customer_id}",
        invoice_id=f"inv_{invoice_id}",
        amount_minor=amount,
        currency=currency,
        status=status,
        method=("card", "upi", "netbanking", "wallet")[invoice_id % 4],
        issuer=("HDFC", "ICICI", "okaxis")[invoice_id % 3],
        decline_code=decline,
        attempt_number=attempt,
        fee_minor=fee,
        fee_tax_minor=fee_tax,
        balance_transaction_id=None,
        settlement_id=None,
        created_at=at,
        settled_at=None,
        raw_json="{}",
    )


def bank_line(
    w: World, payment_id: str, gross: int, fee: int, fee_tax: int, currency: str, settled: datetime
) -> None:
    day = settled.strftime("%Y%m%d")
    line = w.ids.get("bank_settlements", 0) + 1
    w.add(
        "bank_settlements",
        settlement_id=f"setl_{day}",
        utr=f"UTR{day}",
        payment_id=payment_id,
        gross_minor=gross,
        fee_minor=fee,
        tax_minor=fee_tax,
        net_minor=gross - fee - fee_tax,
        currency=currency,
        settled_at=settled,
        line_number=line,
        file="settlements.csv",
        bank_row_id=f"settlements.csv:{line}",
    )


def inject_discrepancies(w: World) -> None:
    """One manual invoice per case, paid on 2025-06-20 (Friday) unless stated."""
    at = datetime(2025, 6, 20, 11)
    cases = [
        ("ch_missing_gw", dict(gateway=False, bank="none")),
        ("ch_missing_ledger", dict(ledger=False)),
        ("ch_short_paid", dict(bank="short")),
        ("ch_usd", dict(gw_currency="USD")),
        ("ch_fee_off", dict(bank="fee_off")),
        ("ch_late", dict(bank="none")),
        ("ch_dup_bank", dict(bank="twice")),
        ("ch_recent", dict(bank="none", at=datetime(2025, 6, 27, 15))),  # within SLA: matched
    ]
    for n, (gpid, opts) in enumerate(cases):
        when = opts.pop("at", at)
        iid = manual_invoice(w, customer_id=1 + n % 5, amount=50_000, at=when)
        pay(w, iid, 1 + n % 5, 59_000, when, gw_index=n, gpid=gpid, **opts)
    # The customer is charged twice for one invoice: the gateway and bank see both.
    iid = manual_invoice(w, customer_id=2, amount=50_000, at=at)
    pay(w, iid, 2, 59_000, at, gw_index=1, gpid="ch_first_charge")
    pay(
        w,
        iid,
        2,
        59_000,
        at + timedelta(minutes=5),
        gw_index=1,
        gpid="ch_double_charge",
        ledger=False,
    )
    # A refund and a negative adjustment deducted from a settlement.
    w.add(
        "gateway_refunds",
        id="re_1",
        gateway="stripe",
        created_at=at,
        status="processed",
        amount_minor=10_000,
        currency="INR",
        payment_id="ch_1",
        reason="requested",
    )
    bank_line(w, "re_1", -10_000, 0, 0, "INR", at + timedelta(days=1))
    bank_line(w, "adj_chargeback_fee", -500, 0, 0, "INR", at + timedelta(days=1))
    w.add(
        "gateway_disputes",
        id="dp_1",
        gateway="stripe",
        created_at=at,
        status="open",
        amount_minor=500,
        currency="INR",
        payment_id="ch_2",
        reason="fraudulent",
    )


def manual_invoice(w: World, customer_id: int, amount: int, at: datetime) -> int:
    tax = amount * 1800 // 10_000
    iid = w.add(
        "ledger_invoices",
        customer_id=customer_id,
        subscription_id=None,
        kind="manual",
        status="paid",
        number=None,
        financial_year="2526",
        currency="INR",
        period_start=None,
        period_end=None,
        issued_at=at,
        subtotal_minor=amount,
        discount_minor=0,
        taxable_minor=amount,
        cgst_minor=tax // 2,
        sgst_minor=tax // 2,
        igst_minor=0,
        tax_minor=tax,
        total_minor=amount + tax,
        credit_applied_minor=0,
        amount_due_minor=amount + tax,
        amount_paid_minor=amount + tax,
        amount_credited_minor=0,
        supplier_gstin=None,
        customer_gstin=None,
        place_of_supply=SUPPLIER_STATE,
        tax_regime="intra",
        reverse_charge=False,
        finalized_at=at,
        paid_at=at,
        voided_at=None,
        created_at=at,
    )
    w.add(
        "ledger_invoice_lines",
        invoice_id=iid,
        position=1,
        kind="recurring",
        description="one-off",
        plan_id=None,
        sac="998314",
        quantity=1,
        amount_minor=amount,
        discount_minor=0,
        taxable_minor=amount,
        tax_rate_bp=1800,
        cgst_minor=tax // 2,
        sgst_minor=tax // 2,
        igst_minor=0,
        period_start=None,
        period_end=None,
    )
    return iid


def gateway_settlements(w: World) -> None:
    """What the gateway says it paid out: the net of each bank settlement."""
    by_id: dict[str, dict] = {}
    for line in w.rows["bank_settlements"]:
        s = by_id.setdefault(
            line["settlement_id"],
            {
                "id": line["settlement_id"],
                "gateway": "razorpay",
                "created_at": line["settled_at"],
                "status": "processed",
                "amount_minor": 0,
                "fee_minor": 0,
                "tax_minor": 0,
                "currency": "INR",
                "utr": line["utr"],
            },
        )
        s["amount_minor"] += line["net_minor"]
        s["fee_minor"] += line["fee_minor"]
        s["tax_minor"] += line["tax_minor"]
    w.rows["gateway_settlements"] = list(by_id.values())


def load_raw(con: duckdb.DuckDBPyConnection, w: World) -> None:
    """Create every raw table from the contract, then insert the world's rows by name."""
    con.execute("create schema raw")
    for table, cols in raw_contract().items():
        ddl = ", ".join(f'"{c}" {t}' for c, t in cols)
        con.execute(f"create table raw.{table} ({ddl})")
        rows = w.rows.get(table, [])
        if not rows:
            continue
        names = [c for c, _ in cols]
        frame = pd.DataFrame([{k: r.get(k) for k in names} for r in rows], columns=names)
        con.register("_rows", frame)
        con.execute(f"insert into raw.{table} by name select * from _rows")
        con.unregister("_rows")


@dataclass
class BuiltWarehouse:
    """The built warehouse plus the world's ground truth (tests read both)."""

    path: Path
    world: World
    result: subprocess.CompletedProcess

    as_of: str = AS_OF
    expected_recon: dict[str, str] = field(default_factory=lambda: dict(EXPECTED_RECON))
    plans: dict[int, tuple[str, str, int, int]] = field(default_factory=lambda: dict(PLANS))

    @staticmethod
    def run_dbt(args: list[str], db: Path, target: Path) -> subprocess.CompletedProcess:
        return run_dbt(args, db, target)

    def query(self, sql: str) -> pd.DataFrame:
        con = duckdb.connect(str(self.path), read_only=True)
        try:
            return con.execute(sql).df()
        finally:
            con.close()


def run_dbt(args: list[str], db: Path, target: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PAYSIGHT_WAREHOUSE_PATH": str(db), "PAYSIGHT_DBT_TARGET": "dev"}
    return subprocess.run(
        [
            str(REPO_ROOT / ".venv" / "bin" / "dbt"),
            *args,
            "--project-dir",
            str(DBT_DIR),
            "--profiles-dir",
            str(DBT_DIR),
            "--target-path",
            str(target),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO_ROOT,
    )


@pytest.fixture(scope="session")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> BuiltWarehouse:
    """The hand-built world loaded into a temporary DuckDB and built with `dbt build`."""
    tmp = tmp_path_factory.mktemp("dbt")
    db = tmp / "warehouse.duckdb"
    w = build_world()
    gateway_settlements(w)
    con = duckdb.connect(str(db))
    load_raw(con, w)
    con.close()
    result = run_dbt(["build", "--vars", f"{{as_of: '{AS_OF}'}}"], db, tmp / "target")
    return BuiltWarehouse(db, w, result)
