"""Transaction features computed strictly from the past, with labels only once they are known.

Input columns: ``transaction_id, amount, created_at`` and, when the data has them,
``customer_id`` and any of ``instrument_id, terminal_id, merchant_id`` (the entities whose
fraud history matters), ``plan_amount`` and a 0/1 label. ``amount``/``plan_amount`` are
integer minor units (``amount_minor`` is accepted too); naive ``created_at`` values are UTC.
Hours are local time (``LOCAL_TZ``). Other numeric columns may be passed through as
features (``extra``), e.g. the anonymized components of a card-fraud data set.

The card-fraud literature's features (Le Borgne et al., *Reproducible Machine Learning for
Credit Card Fraud Detection*): per customer, the number and mean amount of transactions in
the last 1, 7 and 30 days; per entity, the number of transactions and of frauds in the
1, 7 and 30 days that ENDED ``label_delay`` ago (a label is known only ``label_delay``
after its transaction, so nothing newer is used); time of day, night and weekend flags.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

REQUIRED = ("transaction_id", "amount", "created_at")
ENTITY_COLUMNS = ("instrument_id", "terminal_id", "merchant_id")
WINDOWS_DAYS = (1, 7, 30)
LOCAL_TZ = "Asia/Kolkata"
DEFAULT_LABEL_DELAY = pd.Timedelta(days=7)
_SECONDS_PER_DAY = 86_400
# Columns whose name gives the label away are never passed through as features.
LEAKY_WORDS = ("fraud", "label", "scenario", "chargeback", "dispute", "class")


class TransactionInputError(ValueError):
    """The transactions table is not usable; the message names the problem."""


def validate_transactions(df: pd.DataFrame) -> pd.DataFrame:
    """Check the schema and return a copy with canonical dtypes, sorted by time."""
    df = df.copy()
    if "amount" not in df.columns and "amount_minor" in df.columns:
        df = df.rename(columns={"amount_minor": "amount"})
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise TransactionInputError(f"transactions are missing columns {missing}")
    if df["transaction_id"].duplicated().any():
        dupes = df.loc[df["transaction_id"].duplicated(), "transaction_id"].head(3).tolist()
        raise TransactionInputError(f"duplicate transaction_id values, e.g. {dupes}")
    amount = pd.to_numeric(df["amount"], errors="coerce")
    if amount.isna().any() or (amount < 0).any():
        raise TransactionInputError("amount must be a non-negative number of minor units")
    df["amount"] = amount.astype("float64")
    try:
        created = pd.to_datetime(df["created_at"], utc=True, format="mixed")
    except (ValueError, TypeError) as exc:
        raise TransactionInputError(
            f"created_at has values that are not timestamps: {exc}"
        ) from exc
    if created.isna().any():
        raise TransactionInputError("created_at has missing values")
    df["created_at"] = created
    if "plan_amount" in df.columns:
        df["plan_amount"] = pd.to_numeric(df["plan_amount"], errors="coerce").astype("float64")
    return df.sort_values(["created_at", "transaction_id"], kind="mergesort").reset_index(drop=True)


def entity_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in ENTITY_COLUMNS if c in df.columns]


def extra_columns(
    df: pd.DataFrame, label_col: str | None, extra: Sequence[str] | None
) -> list[str]:
    """Pass-through numeric columns: ``extra`` when given, else every numeric column that is
    not part of the schema and whose name does not give a label away."""
    if extra is not None:
        missing = [c for c in extra if c not in df.columns]
        if missing:
            raise TransactionInputError(f"extra feature columns {missing} are not in the table")
        return list(extra)
    known = {*REQUIRED, "amount_minor", "customer_id", "plan_amount", *ENTITY_COLUMNS}
    out = []
    for col in df.columns:
        name = str(col).lower()
        if col in known or col == label_col or any(w in name for w in LEAKY_WORDS):
            continue
        if pd.api.types.is_numeric_dtype(df[col]) and not pd.api.types.is_bool_dtype(df[col]):
            out.append(col)
    return out


def _codes(values: pd.Series) -> np.ndarray:
    """Integer codes per entity; a missing entity gets its own code per row, so unknown
    customers are never pooled into one busy pseudo-customer."""
    codes = pd.factorize(values, use_na_sentinel=True)[0].astype(np.int64)
    missing = codes < 0
    if missing.any():
        codes[missing] = codes.max(initial=-1) + 1 + np.arange(int(missing.sum()))
    return codes


def _composite(keys: np.ndarray, t_s: np.ndarray, reach: int):
    """Rows sorted by (key, time) and an int64 composite key in which a window of up to
    ``reach`` seconds never crosses into another key's rows."""
    order = np.lexsort((t_s, keys))
    k, t = keys[order], t_s[order]
    span = int(t.max() - t.min()) + reach + 1
    return order, k, t, k * span + (t - t.min())


def window_sum(
    keys: np.ndarray, t_s: np.ndarray, values: np.ndarray, start_s: int, end_s: int
) -> tuple[np.ndarray, np.ndarray]:
    """Count and sum of ``values`` of the same key's rows with time in
    ``[t - start_s, t - end_s)``: strictly before ``t - end_s`` (so with ``end_s = 0`` rows
    at the very same instant are not "the past")."""
    order, _, _, comp = _composite(keys, t_s, start_s)
    lo = np.searchsorted(comp, comp - start_s, side="left")
    hi = np.searchsorted(comp, comp - end_s, side="left")
    csum = np.concatenate([[0.0], np.cumsum(values[order])])
    count = np.maximum(hi - lo, 0).astype(float)
    total = np.where(hi > lo, csum[hi] - csum[np.minimum(lo, hi)], 0.0)
    out_count, out_sum = np.empty_like(count), np.empty_like(total)
    out_count[order], out_sum[order] = count, total
    return out_count, out_sum


def _past_expanding(keys: np.ndarray, t_s: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, ...]:
    """Count, mean and std of all strictly earlier values of the same key."""
    order, k, _, comp = _composite(keys, t_s, 0)
    v = x[order]
    first_same = np.searchsorted(comp, comp, side="left")
    group_start = np.searchsorted(k, k, side="left")
    c1 = np.concatenate([[0.0], np.cumsum(v)])
    c2 = np.concatenate([[0.0], np.cumsum(v * v)])
    n = (first_same - group_start).astype(float)
    s1 = c1[first_same] - c1[group_start]
    s2 = c2[first_same] - c2[group_start]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, s1 / np.maximum(n, 1), np.nan)
        var = np.where(n > 1, (s2 - n * mean**2) / np.maximum(n - 1, 1), np.nan)
    std = np.sqrt(np.clip(var, 0, None))
    outs = []
    for arr in (n, mean, std):
        res = np.empty_like(arr)
        res[order] = arr
        outs.append(res)
    return tuple(outs)


def _prev_gap_days(keys: np.ndarray, t_s: np.ndarray) -> np.ndarray:
    """Days since the same key's previous (strictly earlier) transaction; NaN for the first."""
    order, k, t, comp = _composite(keys, t_s, 0)
    first_same = np.searchsorted(comp, comp, side="left")
    group_start = np.searchsorted(k, k, side="left")
    has_prev = first_same > group_start
    prev = t[np.clip(first_same - 1, 0, None)]
    gap = np.where(has_prev, (t - prev) / _SECONDS_PER_DAY, np.nan)
    out = np.empty_like(gap)
    out[order] = gap
    return out


def _customer_features(
    feats: pd.DataFrame, cust: np.ndarray, inst: np.ndarray | None, t_s: np.ndarray, amount
) -> None:
    for days in WINDOWS_DAYS:
        count, total = window_sum(cust, t_s, amount, days * _SECONDS_PER_DAY, 0)
        feats[f"cust_count_{days}d"] = count
        # The mean amount of the window, the current transaction included (it is known now).
        feats[f"cust_mean_amount_{days}d"] = (total + amount) / (count + 1)
        feats[f"cust_log_sum_{days}d"] = np.log1p(total)
    n_past, mean_past, std_past = _past_expanding(cust, t_s, amount)
    feats["cust_past_txns"] = n_past
    # Ratio to the customer's usual amount; 1.0 (not unusual) when there is no history yet.
    feats["amount_vs_cust_mean"] = np.where(n_past > 0, amount / np.maximum(mean_past, 1.0), 1.0)
    scale = np.where(
        np.isfinite(std_past), np.maximum(std_past, 0.1 * np.nan_to_num(mean_past) + 1), np.nan
    )
    feats["amount_z_cust"] = np.where(n_past > 1, (amount - mean_past) / scale, 0.0)
    cust_first = pd.Series(t_s).groupby(cust).transform("min").to_numpy()
    cust_age = (t_s - cust_first) / _SECONDS_PER_DAY
    feats["log_cust_age_days"] = np.log1p(cust_age)
    gap = _prev_gap_days(cust, t_s)
    feats["log_days_since_prev"] = np.log1p(np.nan_to_num(gap, nan=365.0))
    if inst is not None:
        pair = pd.factorize(cust * (int(inst.max()) + 1) + inst)[0].astype(np.int64)
        # The minimum time of a group is never later than the row itself: only the past.
        pair_first = pd.Series(t_s).groupby(pair).transform("min").to_numpy()
        pair_age = (t_s - pair_first) / _SECONDS_PER_DAY
        # An instrument first used in the last day by a customer we have known for longer.
        feats["new_instrument"] = ((pair_age < 1.0) & (cust_age >= 1.0)).astype(float)


def _entity_risk(
    feats: pd.DataFrame,
    name: str,
    keys: np.ndarray,
    t_s: np.ndarray,
    labels: np.ndarray | None,
    delay_s: int,
) -> None:
    """Transactions and frauds of the entity in windows ending ``delay_s`` ago."""
    ones = np.ones(len(keys))
    for days in WINDOWS_DAYS:
        count, _ = window_sum(keys, t_s, ones, delay_s + days * _SECONDS_PER_DAY, delay_s)
        feats[f"{name}_count_{days}d"] = count
        if labels is not None:
            _, frauds = window_sum(keys, t_s, labels, delay_s + days * _SECONDS_PER_DAY, delay_s)
            feats[f"{name}_frauds_{days}d"] = frauds
            feats[f"{name}_risk_{days}d"] = np.where(count > 0, frauds / np.maximum(count, 1), 0.0)
    recent, _ = window_sum(keys, t_s, ones, _SECONDS_PER_DAY, 0)
    feats[f"{name}_count_last_1d"] = recent


def transaction_features(
    df: pd.DataFrame,
    label_col: str | None = None,
    label_delay: pd.Timedelta = DEFAULT_LABEL_DELAY,
    extra: Sequence[str] | None = (),
) -> pd.DataFrame:
    """One row per transaction (same order as the validated, time-sorted input).

    With ``label_col`` the entity fraud counts use the labels of transactions at least
    ``label_delay`` older than the row (missing labels count as not fraud); the row's own
    label and any newer one are never read. ``extra`` columns are passed through
    (``None``: every unlabelled-looking numeric column)."""
    tx = validate_transactions(df)
    if tx.empty:
        raise TransactionInputError("no transactions to featurize")
    delay_s = int(pd.Timedelta(label_delay).total_seconds())
    if delay_s < 0:
        raise TransactionInputError(f"label_delay must be >= 0, got {label_delay}")
    # Whole seconds keep the (group, time) composite keys far from int64 overflow even for
    # millions of customers over years; events in the same second count as simultaneous.
    naive_utc = tx["created_at"].dt.tz_localize(None).to_numpy()
    t_s = naive_utc.astype("datetime64[s]").astype(np.int64)
    amount = tx["amount"].to_numpy()
    feats = pd.DataFrame({"transaction_id": tx["transaction_id"].to_numpy()})
    feats["log_amount"] = np.log1p(amount)
    labels = None
    if label_col is not None and label_col in tx.columns:
        labels = pd.to_numeric(tx[label_col], errors="coerce").fillna(0).clip(0, 1).to_numpy()
    entities = entity_columns(tx)
    codes = {name: _codes(tx[name]) for name in entities}
    if "customer_id" in tx.columns:
        cust = _codes(tx["customer_id"])
        inst = codes.get("instrument_id", codes.get(entities[0])) if entities else None
        _customer_features(feats, cust, inst, t_s, amount)
    for name, keys in codes.items():
        _entity_risk(feats, name.removesuffix("_id"), keys, t_s, labels, delay_s)
    local = tx["created_at"].dt.tz_convert(LOCAL_TZ)
    hour = local.dt.hour.to_numpy() + local.dt.minute.to_numpy() / 60.0
    feats["hour"] = hour
    feats["night"] = ((hour >= 0) & (hour < 5)).astype(float)  # before 05:00, as on main
    feats["weekend"] = (local.dt.dayofweek.to_numpy() >= 5).astype(float)
    if "plan_amount" in tx.columns:
        plan = tx["plan_amount"].to_numpy()
        feats["amount_vs_plan"] = np.where(plan > 0, amount / np.where(plan > 0, plan, 1), 1.0)
    for col in extra_columns(tx, label_col, extra):
        feats[f"x_{col}"] = pd.to_numeric(tx[col], errors="coerce").astype("float64").to_numpy()
    feats["created_at"] = tx["created_at"].reset_index(drop=True)
    return feats


def feature_columns(features: pd.DataFrame) -> list[str]:
    return [c for c in features.columns if c not in ("transaction_id", "created_at")]
