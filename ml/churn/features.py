"""Which columns of a customer table are features, and how to read them: numbers (including
numbers stored as text such as ``"29.85"`` or ``" "``), categories, and what to ignore
(identifiers, free text, timestamps). The same :class:`FeatureSpec` reads training and
scoring frames, so a model sees its columns the same way in every process."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ml.classify import TrainingInputError

ID_COLUMNS = {"customer_id", "subscription_id", "rownames", "id", "customerid"}
# A text column is numeric when nearly all of its non-blank values parse as numbers.
NUMERIC_TEXT_SHARE = 0.95
# More distinct values than this (and than 5% of rows) make a text column an identifier
# or free text rather than a category.
MAX_CATEGORIES = 100
MISSING = "missing"
POSITIVE_WORDS = {"1", "yes", "y", "true", "t", "churn", "churned", "left", "lost"}
NEGATIVE_WORDS = {"0", "no", "n", "false", "f", "stay", "stayed", "retained", "active"}


@dataclass(frozen=True)
class FeatureSpec:
    numeric: list[str]
    categorical: list[str]
    categories: dict[str, list[str]] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def frame(self, df: pd.DataFrame) -> pd.DataFrame:
        """The feature columns, numbers as float64 (unparseable text becomes missing) and
        categories as strings with ``"missing"`` for blanks."""
        missing = [c for c in self.columns if c not in df.columns]
        if missing:
            raise TrainingInputError(f"missing feature columns {missing}")
        out = pd.DataFrame(index=df.index)
        for col in self.numeric:
            out[col] = as_number(df[col])
        for col in self.categorical:
            out[col] = as_category(df[col])
        return out


def as_number(values: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(values):
        return values.astype("float64")
    if pd.api.types.is_numeric_dtype(values):
        return pd.to_numeric(values, errors="coerce").astype("float64")
    text = values.astype("string").str.strip().str.replace(",", "", regex=False)
    return pd.to_numeric(text.replace("", pd.NA), errors="coerce").astype("float64")


def as_category(values: pd.Series) -> pd.Series:
    text = values.astype("string").str.strip()
    return text.mask(text.isna() | (text == ""), MISSING).astype(object)


def _numeric_text(values: pd.Series) -> bool:
    text = values.dropna().astype("string").str.strip()
    text = text[text != ""]
    if text.empty:
        return False
    parsed = pd.to_numeric(text.str.replace(",", "", regex=False), errors="coerce")
    return bool(parsed.notna().mean() >= NUMERIC_TEXT_SHARE)


def infer_spec(
    df: pd.DataFrame, exclude: Iterable[str], features: list[str] | None = None
) -> FeatureSpec:
    """Numeric and categorical feature columns of ``df`` (all but ``exclude``, identifiers,
    timestamps and free text), or exactly ``features`` when given."""
    excluded = set(exclude)
    candidates = features or [
        c for c in df.columns if c not in excluded and str(c).lower() not in ID_COLUMNS
    ]
    numeric, categorical = [], []
    for col in candidates:
        if col not in df.columns:
            raise TrainingInputError(f"missing feature columns {[col]}")
        values = df[col]
        if pd.api.types.is_datetime64_any_dtype(values) or isinstance(values.dtype, pd.PeriodDtype):
            continue  # a timestamp is when, not who: it would only memorize the period
        if (
            pd.api.types.is_bool_dtype(values)
            or pd.api.types.is_numeric_dtype(values)
            or _numeric_text(values)
        ):
            numeric.append(col)
        else:
            distinct = values.nunique(dropna=True)
            # Nearly one value per row is an identifier or free text, not a category.
            if distinct <= max(MAX_CATEGORIES, 0.05 * len(df)) and distinct < 0.5 * len(df):
                categorical.append(col)
    if not numeric and not categorical:
        raise TrainingInputError("no usable feature columns (numeric or categorical) found")
    categories = {c: sorted(as_category(df[c]).unique().tolist(), key=str) for c in categorical}
    return FeatureSpec(numeric, categorical, categories)


def binary_labels(values: pd.Series, name: str) -> np.ndarray:
    """0/1 labels from numbers, booleans or yes/no-like words; anything else is refused."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype(int).to_numpy()
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().all() and numbers.isin([0, 1]).all():
        return numbers.astype(int).to_numpy()
    words = values.astype("string").str.strip().str.lower()
    mapped = words.map(lambda w: 1 if w in POSITIVE_WORDS else 0 if w in NEGATIVE_WORDS else np.nan)
    if mapped.isna().any():
        bad = values[mapped.isna()].head(3).tolist()
        raise TrainingInputError(
            f"{name} must be 0/1 (or yes/no) for every row (drop unlabelled rows), got {bad}"
        )
    return mapped.astype(int).to_numpy()
