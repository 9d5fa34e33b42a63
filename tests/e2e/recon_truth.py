"""The reconciliation status each money movement of a simulated world should get, derived only
from the simulator's ground truth (`sim_truth`), the gateway's own state and the bank calendar
seed, never from a dbt model; and a comparison that names every disagreement."""

from __future__ import annotations

import csv
import sqlite3
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[2]
HOLIDAYS_CSV = REPO_ROOT / "dbt_project" / "seeds" / "indian_bank_holidays.csv"
SLA_WORKING_DAYS = 2  # dbt var settlement_sla_days (dbt_project.yml)

# When one movement has several causes, the contract reports one status: the first that applies
# (the same order as fct_reconciliation). A double bank credit must be returned whoever made the
# charge; a charge the ledger never made outranks a settlement that was merely late.
PRECEDENCE = (
    "duplicate",
    "missing_in_gateway",
    "missing_in_ledger",
    "currency_mismatch",
    "amount_mismatch",
    "fee_mismatch",
    "unsettled_overdue",
    "matched",
)


def bank_holidays(path: Path = HOLIDAYS_CSV) -> set[date]:
    with path.open(encoding="utf-8") as fh:
        return {date.fromisoformat(row["holiday_date"]) for row in csv.DictReader(fh)}


def working_days_after(start: date, end: date, holidays: set[date]) -> int:
    """Indian bank working days in (start, end]: not Sunday, not a listed holiday
    (2nd/4th Saturdays are listed)."""
    n, d = 0, start
    while d < end:
        d += timedelta(days=1)
        if d.isoweekday() != 7 and d not in holidays:
            n += 1
    return n


@dataclass(frozen=True)
class Expectation:
    status: str
    causes: tuple[str, ...]  # what in the truth explains it ("none" for a clean payment)


def unsettled_status(created: date, as_of: date, holidays: set[date]) -> str:
    """No bank line: overdue once the SLA has run out, otherwise still in time (matched)."""
    overdue = working_days_after(created, as_of, holidays) > SLA_WORKING_DAYS
    return "unsettled_overdue" if overdue else "matched"


def gateway_charges(gateway_db: Path) -> pd.DataFrame:
    """Succeeded charges from the simulated gateway's own store (not from ingestion)."""
    con = sqlite3.connect(gateway_db)
    try:
        rows = con.execute(
            "select id, created_at from sim_payments where status = 'succeeded'"
        ).fetchall()
    finally:
        con.close()
    return pd.DataFrame(
        [(pid, datetime.fromtimestamp(ts, UTC)) for pid, ts in rows],
        columns=["gateway_payment_id", "created_at"],
    )


def paid_out_ids(gateway_db: Path, world_end: datetime, as_of: date) -> set[str]:
    """Charges whose payout is in the bank files (arrived by the end of the simulated world)
    and dated on or before as_of (UTC date, as the warehouse stores it)."""
    day_after = datetime.combine(as_of + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    con = sqlite3.connect(gateway_db)
    try:
        rows = con.execute(
            "select b.source_id from sim_balance_txns b join sim_payouts p on p.id = b.payout_id"
            " where b.kind = 'charge' and p.arrival_at <= ? and p.arrival_at < ?",
            (world_end.timestamp(), day_after.timestamp()),
        ).fetchall()
    finally:
        con.close()
    return {r[0] for r in rows}


def expected_statuses(
    charges: pd.DataFrame,
    discrepancies: pd.DataFrame,
    fraud: pd.DataFrame,
    *,
    as_of: date,
    holidays: set[date],
    settled_ids: set[str],
) -> dict[str, Expectation]:
    """recon_key -> expected status on `as_of`. `charges`: every succeeded gateway charge
    (id, created_at); `settled_ids`: clean charges whose bank line had arrived by as_of (the bank
    files hold exactly the payouts the gateway paid); `discrepancies`/`fraud`: sim_truth tables.
    Dates are UTC dates, as the model compares them (timestamps are stored in UTC)."""
    fraud_ids = set(fraud.loc[fraud.status == "succeeded", "gateway_payment_id"])
    kinds = {r.payment_id: r for r in discrepancies.itertuples()}
    out: dict[str, Expectation] = {}
    for pid, created_at in zip(charges.gateway_payment_id, charges.created_at, strict=True):
        created = created_at.astimezone(UTC).date()
        if created > as_of:
            continue  # not yet made on the day the replay describes
        causes: list[tuple[str, str]] = []
        if pid in fraud_ids:
            causes.append(("missing_in_ledger", "fraud"))
        d = kinds.get(pid)
        if d is not None:
            arrived = (
                d.bank_copies > 0
                and pd.Timestamp(d.bank_settled_at).tz_convert(UTC).date() <= as_of
            )
            if not arrived:  # missing, or late and still on its way: unsettled
                causes.append((unsettled_status(created, as_of, holidays), d.kind))
            elif d.kind == "duplicated":
                causes.append(("duplicate", "duplicated"))
            elif d.kind == "short_paid":
                causes.append(("amount_mismatch", "short_paid"))
            else:  # late, but arrived by as_of: settled in full, only later than usual
                causes.append(("matched", d.kind))
        elif pid not in settled_ids:
            # Paid out after as_of (or after the world ended): not injected, so only overdue
            # once the SLA has run out.
            causes.append((unsettled_status(created, as_of, holidays), "payout_after_as_of"))
        if not causes:
            causes.append(("matched", "none"))
        status = min((s for s, _ in causes), key=PRECEDENCE.index)
        out[pid] = Expectation(status, tuple(c for _, c in causes))
    return out


@dataclass(frozen=True)
class Disagreement:
    recon_key: str
    expected: str | None  # None: the truth knows no such money movement
    actual: str | None  # None: reconciliation has no row for it
    causes: tuple[str, ...]


def compare(actual: dict[str, str], expected: dict[str, Expectation]) -> list[Disagreement]:
    """Every key where the model's status differs from the truth's, or that one side lacks."""
    out = []
    for key in sorted(set(actual) | set(expected)):
        exp = expected.get(key)
        got = actual.get(key)
        if exp is None or got != exp.status:
            out.append(
                Disagreement(key, exp.status if exp else None, got, exp.causes if exp else ())
            )
    return out


def comparison_table(actual: dict[str, str], expected: dict[str, Expectation]) -> pd.DataFrame:
    """Counts of (truth cause, expected status, actual status): the table in reports."""
    rows = [
        {
            "causes": "+".join(exp.causes),
            "expected": exp.status,
            "actual": actual.get(key, "<no row>"),
        }
        for key, exp in expected.items()
    ]
    rows += [
        {"causes": "<not in truth>", "expected": "<no row>", "actual": status}
        for key, status in actual.items()
        if key not in expected
    ]
    frame = pd.DataFrame(rows, columns=["causes", "expected", "actual"])
    return frame.value_counts().rename("rows").reset_index().sort_values(["causes", "actual"])
