"""Seeded synthetic data with realistic structure for the ML tests (no sim_truth needed)."""

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
