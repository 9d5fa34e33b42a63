"""Seeded synthetic data with realistic structure, for tests, benchmarks and examples."""

from __future__ import annotations

import numpy as np
import pandas as pd


def daily_revenue(days: int = 365, seed: int = 0, start: str = "2024-01-01") -> pd.DataFrame:
    """Growing daily revenue with a weekly cycle, salary-day spikes, a festive bump and noise."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range(start, periods=days, freq="D")
    t = np.arange(days)
    level = 100_000 + 150 * t
    weekly = np.array([1.05, 1.0, 0.98, 0.97, 1.02, 0.92, 0.86])[ds.dayofweek]
    salary = np.where((ds.day == 1) | ds.is_month_end, 1.25, 1.0)
    festive = 1 + 0.15 * np.exp(-(((ds.dayofyear - 300) / 10.0) ** 2))
    y = level * weekly * salary * festive * rng.lognormal(0, 0.03, days)
    return pd.DataFrame({"ds": ds, "y": np.round(y)})


def monthly_revenue(months: int = 48, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2021-01-01", periods=months, freq="MS")
    t = np.arange(months)
    seasonal = 1 + 0.1 * np.sin(2 * np.pi * (t % 12) / 12)
    y = (2_000_000 + 40_000 * t) * seasonal * rng.lognormal(0, 0.02, months)
    return pd.DataFrame({"ds": ds, "y": np.round(y)})


PLAN_PRICES_MINOR = np.array([19_900, 49_900, 99_900, 249_900, 499_900])
IST_OFFSET = pd.Timedelta(hours=5, minutes=30)


def transactions(
    n_customers: int = 2_000, days: int = 180, seed: int = 0, fraud_share: float = 0.01
) -> pd.DataFrame:
    """Card/UPI transactions with injected fraud bursts (``label`` = 1).

    Legit: a monthly plan charge plus occasional add-ons at the customer's usual hour,
    some legitimate card replacements, night-time payments and upgrades. Fraud bursts on
    ~``fraud_share`` of customers: mostly a new instrument, several charges within hours,
    often at night, usually far above the plan price. Columns: transaction_id, customer_id,
    instrument_id, amount (minor units), plan_amount, created_at (UTC), label.
    """
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2025-01-01", tz="UTC")
    cust = np.arange(n_customers)
    plan = rng.choice(PLAN_PRICES_MINOR, n_customers, p=[0.3, 0.3, 0.2, 0.15, 0.05])
    pref_hour = np.clip(rng.normal(13, 3.5, n_customers), 6, 23)
    bill_day = rng.integers(0, 28, n_customers)
    # Recurring charges: one per 30 days per customer.
    periods = days // 30 + 1
    c_rec = np.repeat(cust, periods)
    d_rec = np.tile(np.arange(periods) * 30, n_customers) + bill_day[c_rec]
    amt_rec = plan[c_rec].astype(float)
    # Add-ons: Poisson per customer, smaller amounts, random days.
    n_add = rng.poisson(0.6 * periods, n_customers)
    c_add = np.repeat(cust, n_add)
    d_add = rng.integers(0, days, len(c_add))
    amt_add = plan[c_add] * rng.uniform(0.1, 1.0, len(c_add))
    c = np.concatenate([c_rec, c_add])
    d = np.concatenate([d_rec, d_add])
    amount = np.concatenate([amt_rec, amt_add])
    keep = d < days
    c, d, amount = c[keep], d[keep], amount[keep]
    hour = np.clip(rng.normal(pref_hour[c], 1.5), 0, 23.99)
    night = rng.random(len(c)) < 0.03  # legit late-night shoppers and auto-debits
    hour[night] = rng.uniform(0, 5, night.sum())
    upgrade = rng.random(len(c)) < 0.01  # legit plan upgrades / annual prepayments
    amount[upgrade] *= rng.uniform(2, 6, upgrade.sum())
    # Instruments: primary per customer; 8% replace their card on a random day.
    inst = c * 10
    replaces = rng.random(n_customers) < 0.08
    replace_day = np.where(replaces, rng.integers(0, days, n_customers), days + 1)
    inst = np.where(d >= replace_day[c], inst + 1, inst)
    label = np.zeros(len(c), dtype=int)
    # Fraud bursts.
    n_bursts = max(1, int(n_customers * fraud_share))
    victims = rng.choice(cust, n_bursts, replace=False)
    sizes = rng.integers(2, 8, n_bursts)
    fc = np.repeat(victims, sizes)
    burst = np.repeat(np.arange(n_bursts), sizes)
    f_day0 = rng.integers(30, days, n_bursts)
    tight = rng.random(n_bursts) < 0.75
    f_at_night = rng.random(n_bursts) < 0.55
    f_hour0 = np.where(f_at_night, rng.uniform(0, 4, n_bursts), rng.uniform(8, 22, n_bursts))
    spread_h = np.where(tight[burst], rng.uniform(0, 3, len(fc)), rng.uniform(0, 48, len(fc)))
    f_hours_abs = f_day0[burst] * 24 + f_hour0[burst] + spread_h
    new_inst = rng.random(n_bursts) < 0.8
    f_inst = np.where(new_inst[burst], 9_000_000 + burst, fc * 10)
    big = rng.random(n_bursts) < 0.8
    f_amount = np.where(
        big[burst],
        plan[fc] * rng.uniform(2, 10, len(fc)),
        plan[fc] * rng.uniform(0.5, 1.5, len(fc)),
    )
    hours_abs = np.concatenate([d * 24 + hour, f_hours_abs])
    local = start + pd.to_timedelta(hours_abs, unit="h")
    frame = pd.DataFrame(
        {
            "customer_id": np.concatenate([c, fc]),
            "instrument_id": np.concatenate([inst, f_inst]),
            "amount": np.round(np.concatenate([amount, f_amount])).astype(np.int64),
            "created_at": local - IST_OFFSET,
            "label": np.concatenate([label, np.ones(len(fc), dtype=int)]),
        }
    )
    frame = frame[frame["created_at"] < start + pd.Timedelta(days=days)]
    frame["plan_amount"] = plan[frame["customer_id"].to_numpy()]
    frame["customer_id"] = "cus_" + frame["customer_id"].astype(str)
    frame["instrument_id"] = "pm_" + frame["instrument_id"].astype(str)
    frame = frame.sort_values("created_at", kind="mergesort").reset_index(drop=True)
    frame.insert(0, "transaction_id", [f"txn_{i:08d}" for i in range(len(frame))])
    return frame


def customer_features(n: int = 5_000, seed: int = 0, months: int = 12) -> pd.DataFrame:
    """Monthly snapshots of ``marts.customer_features``-like rows with a ``churned_30d`` label.

    Churn risk rises with failed payments, payment silence, falling usage, downgrades and
    pauses, and falls with tenure; failure and usage interact (non-linear on purpose).
    """
    rng = np.random.default_rng(seed)
    snapshot = pd.Timestamp("2025-01-01") + pd.to_timedelta(
        rng.integers(0, months, n) * 30, unit="D"
    )
    tenure = rng.gamma(2.0, 200.0, n)
    mrr = rng.choice(PLAN_PRICES_MINOR, n, p=[0.3, 0.3, 0.2, 0.15, 0.05]) * rng.integers(1, 4, n)
    failed_30 = rng.poisson(0.3, n)
    failed_90 = failed_30 + rng.poisson(0.5, n)
    since_success = np.where(failed_30 > 0, rng.integers(20, 75, n), rng.integers(0, 35, n))
    usage = rng.gamma(2.0, 15.0, n)
    usage_trend = np.clip(rng.normal(1.0, 0.3, n), 0.05, None)
    downgrade = (rng.random(n) < 0.08).astype(int)
    pauses = rng.poisson(0.15, n)
    plan_changes = rng.poisson(0.3, n) + downgrade
    seat_changes = rng.poisson(0.4, n)
    tickets = rng.poisson(0.4 + 0.6 * (failed_30 > 0), n)
    logit = (
        -3.4
        + 0.9 * np.minimum(failed_30, 3)
        + 1.2 * (since_success > 40) * (usage_trend < 0.8)  # interaction: silent and fading
        + 1.4 * (usage < 8)
        + 0.9 * downgrade
        + 0.5 * pauses
        + 0.25 * tickets
        - 0.0012 * np.minimum(tenure, 900)
        + 0.4 * (snapshot.month.isin([3, 4]))  # financial-year-end budget cuts
    )
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {
            "customer_id": [f"cus_{i:06d}" for i in range(n)],
            "snapshot_date": snapshot,
            "tenure_days": np.round(tenure).astype(int),
            "mrr_minor": mrr.astype(np.int64),
            "plan_changes_90d": plan_changes,
            "seat_changes_90d": seat_changes,
            "failed_payments_30d": failed_30,
            "failed_payments_90d": failed_90,
            "days_since_last_successful_payment": since_success,
            "pauses_365d": pauses,
            "support_tickets_30d": tickets,
            "usage_events_30d": np.round(usage).astype(int),
            "usage_trend_30d": usage_trend,
            "downgrade_flag": downgrade,
            "churned_30d": churned,
        }
    )


DECLINE_CODES = (
    "insufficient_funds",
    "issuer_unavailable",
    "do_not_honor",
    "expired_card",
    "timeout",
)
ISSUERS = ("HDFC", "ICICI", "SBI", "AXIS", "KOTAK", "PNB")


def retry_attempts(n: int = 20_000, seed: int = 0) -> pd.DataFrame:
    """Retries after failed payments with a ``succeeded`` label.

    Insufficient funds recover on salary days (1st, last days of the month); issuer outages
    recover within hours; expired cards never do; success decays with the attempt number.
    """
    rng = np.random.default_rng(seed)
    failed_at = pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(
        rng.uniform(0, 365 * 24, n), unit="h"
    )
    code = rng.choice(DECLINE_CODES, n, p=[0.45, 0.2, 0.2, 0.05, 0.1])
    method = rng.choice(["card", "upi", "netbanking"], n, p=[0.5, 0.35, 0.15])
    issuer = rng.choice(ISSUERS, n)
    offset = rng.choice([1, 3, 6, 12, 24, 48, 72, 96, 120, 168], n).astype(float)
    attempt = rng.integers(1, 6, n)
    amount = rng.choice(PLAN_PRICES_MINOR, n) * rng.integers(1, 3, n)
    local_fail = failed_at + IST_OFFSET
    retry_local = local_fail + pd.to_timedelta(offset, unit="h")
    r_day = retry_local.day.to_numpy()
    r_hour = retry_local.hour.to_numpy()
    salary = (r_day <= 2) | (r_day >= 28)
    issuer_bias = dict(zip(ISSUERS, [0.3, 0.2, -0.3, 0.1, 0.2, -0.4], strict=True))
    logit = np.select(
        [code == "insufficient_funds", code == "issuer_unavailable", code == "expired_card"],
        [-1.2 + 1.8 * salary, -1.5 + 2.5 * (offset >= 3) - 0.5 * (offset >= 72), -6.0],
        default=-0.4 + 0.4 * (offset >= 24),
    )
    logit = (
        logit
        + np.vectorize(issuer_bias.get)(issuer)
        + 0.3 * (method == "upi")
        - 0.35 * (attempt - 1)
        - 0.6 * ((r_hour < 6) | (r_hour >= 23))
        - 0.15 * np.log(amount / 49_900)
    )
    succeeded = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {
            "failed_at": failed_at,
            "decline_code": code,
            "method": method,
            "issuer": issuer,
            "amount_minor": amount.astype(np.int64),
            "day_of_month": local_fail.day.to_numpy(),
            "hour": local_fail.hour.to_numpy(),
            "attempt_number": attempt,
            "offset_hours": offset,
            "succeeded": succeeded,
        }
    ).sort_values("failed_at", kind="mergesort", ignore_index=True)
