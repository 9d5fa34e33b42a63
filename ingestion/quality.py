"""Data quality with Great Expectations 1.x: validate a raw table, quarantine failing rows.

`validate_table(df, spec, as_of=...)` runs a suite built from a declarative `SuiteSpec` in an
ephemeral GX context over a pandas data source, and splits the rows into valid and quarantined
(with a `quarantine_reason`). Table-level checks (schema, freshness) are reported, not per row.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from billing_jobs.money import CURRENCY_EXPONENTS
from ingestion.normalizers.common import PAYMENT_COLUMNS

REASON_COLUMN = "quarantine_reason"
_INT_PREFIX = "__int__"
_TS_PREFIX = "__ts__"
_ROW = "__row__"


class QualityCheckError(RuntimeError):
    """A check could not be evaluated at all (so no row can be vouched for)."""


@dataclass(frozen=True)
class Freshness:
    """The newest `column` value must be within `max_age` of `as_of`; no row may be later than
    `as_of + max_future` (clock skew allowance)."""

    column: str
    max_age: timedelta
    max_future: timedelta = timedelta(minutes=5)


@dataclass(frozen=True)
class SuiteSpec:
    """What a raw table must satisfy. Amount columns hold non-negative integer minor units."""

    name: str
    columns: tuple[str, ...]
    non_null: tuple[str, ...] = ()
    amounts: tuple[str, ...] = ()
    currencies: tuple[str, ...] = ()
    enums: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    unique: tuple[tuple[str, ...], ...] = ()
    patterns: Mapping[str, str] = field(default_factory=dict)
    freshness: Freshness | None = None


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one expectation."""

    check: str
    success: bool
    unexpected_count: int = 0
    row_level: bool = True
    observed: str | None = None


@dataclass
class QualityResult:
    """Rows that passed, rows quarantined (with `quarantine_reason`), and every check."""

    valid_df: pd.DataFrame
    quarantined_df: pd.DataFrame
    checks: list[CheckResult]

    @property
    def success(self) -> bool:
        return all(c.success for c in self.checks)

    def failed_checks(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.success]


_CONTEXT: Any = None


def _import_gx() -> None:
    """Import Great Expectations once. Where pyspark is installed (the spark extra) GE imports
    its Spark Connect module, which warns about pandas 3 on import; GE never uses Spark here."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas")
        import great_expectations  # noqa: F401


def _context() -> Any:
    # One ephemeral context per process: creating it is slow and it holds nothing durable.
    global _CONTEXT
    if _CONTEXT is None:
        _import_gx()
        import great_expectations as gx

        _CONTEXT = gx.get_context(mode="ephemeral")
    return _CONTEXT


def _as_exact_int(value: Any) -> Any:
    """Undo pandas' int->float promotion (NaN for missing) without accepting fractions."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        return value.item()  # numpy scalar -> Python scalar
    return value


def _prepare(df: pd.DataFrame, spec: SuiteSpec) -> pd.DataFrame:
    frame = df.reset_index(drop=True).copy()
    for column in spec.amounts:
        if column not in frame:
            continue
        values = [_as_exact_int(v) for v in frame[column].tolist()]
        frame[column] = pd.Series(values, dtype=object)
        ints = [v if isinstance(v, int) and not isinstance(v, bool) else None for v in values]
        frame[_INT_PREFIX + column] = pd.array(ints, dtype="Int64")
    if spec.freshness and spec.freshness.column in frame:
        frame[_TS_PREFIX + spec.freshness.column] = pd.to_datetime(
            frame[spec.freshness.column], utc=True, errors="coerce", format="mixed"
        )
    frame[_ROW] = range(len(frame))
    return frame


def _expectations(spec: SuiteSpec, as_of: datetime | None) -> list[tuple[str, Any, bool]]:
    """(label, expectation, row_level) for every rule of the spec."""
    import great_expectations.expectations as gxe

    out: list[tuple[str, Any, bool]] = []
    for column in spec.non_null:
        out.append((f"not_null({column})", gxe.ExpectColumnValuesToNotBeNull(column=column), True))
    for column in spec.amounts:
        out.append(
            (
                f"integer_minor_units({column})",
                gxe.ExpectColumnValuesToBeInTypeList(column=column, type_list=["int"]),
                True,
            )
        )
        out.append(
            (
                f"non_negative({column})",
                gxe.ExpectColumnValuesToBeBetween(column=_INT_PREFIX + column, min_value=0),
                True,
            )
        )
    iso = sorted(CURRENCY_EXPONENTS)
    for column in spec.currencies:
        out.append(
            (
                f"iso_currency({column})",
                gxe.ExpectColumnValuesToBeInSet(column=column, value_set=iso),
                True,
            )
        )
    for column, allowed in spec.enums.items():
        out.append(
            (
                f"accepted_values({column})",
                gxe.ExpectColumnValuesToBeInSet(column=column, value_set=list(allowed)),
                True,
            )
        )
    for column, pattern in spec.patterns.items():
        out.append(
            (
                f"pattern({column})",
                gxe.ExpectColumnValuesToMatchRegex(column=column, regex=pattern),
                True,
            )
        )
    for key in spec.unique:
        label = f"unique({','.join(key)})"
        if len(key) == 1:
            out.append((label, gxe.ExpectColumnValuesToBeUnique(column=key[0]), True))
        else:
            out.append((label, gxe.ExpectCompoundColumnsToBeUnique(column_list=list(key)), True))
    if spec.freshness is not None:
        if as_of is None or as_of.tzinfo is None:
            raise QualityCheckError(
                f"suite {spec.name} checks freshness: pass a timezone-aware as_of"
            )
        fresh = spec.freshness
        ts = _TS_PREFIX + fresh.column
        out.append(
            (
                f"parseable_timestamp({fresh.column})",
                gxe.ExpectColumnValuesToNotBeNull(column=ts),
                True,
            )
        )
        out.append(
            (
                f"not_in_future({fresh.column})",
                gxe.ExpectColumnValuesToBeBetween(
                    column=ts, max_value=pd.Timestamp(as_of + fresh.max_future)
                ),
                True,
            )
        )
        out.append(
            (
                f"fresh({fresh.column}, {fresh.max_age})",
                gxe.ExpectColumnMaxToBeBetween(
                    column=ts, min_value=pd.Timestamp(as_of - fresh.max_age)
                ),
                False,
            )
        )
    return out


def validate_table(
    df: pd.DataFrame, suite_spec: SuiteSpec, as_of: datetime | None = None
) -> QualityResult:
    """Validate `df` against the spec; failing rows go to the quarantine frame with reasons."""
    missing = [c for c in suite_spec.columns if c not in df.columns]
    if missing:
        quarantined = df.copy()
        quarantined[REASON_COLUMN] = f"schema: missing columns {missing}"
        check = CheckResult(f"schema({suite_spec.name})", False, len(df), False, str(missing))
        return QualityResult(df.iloc[0:0].copy(), quarantined, [check])
    checks = [CheckResult(f"schema({suite_spec.name})", True, 0, False)]
    if df.empty:
        empty = df.copy()
        empty[REASON_COLUMN] = pd.Series(dtype=object)
        return QualityResult(df.copy(), empty, checks)

    _import_gx()
    import great_expectations as gx

    frame = _prepare(df, suite_spec)
    rules = _expectations(suite_spec, as_of)
    context = _context()
    suffix = uuid.uuid4().hex[:12]
    source_name, suite_name = f"paysight_{suffix}", f"{suite_spec.name}_{suffix}"
    source = context.data_sources.add_pandas(source_name)
    try:
        batch = (
            source.add_dataframe_asset(suite_spec.name)
            .add_batch_definition_whole_dataframe("all")
            .get_batch(batch_parameters={"dataframe": frame})
        )
        suite = gx.ExpectationSuite(name=suite_name)
        for label, expectation, row_level in rules:
            # The label rides in `meta`: results do not come back in suite order.
            expectation.meta = {"paysight_check": label, "row_level": row_level}
            if label.startswith("unique("):
                expectation.meta["unique_key"] = label[len("unique(") : -1].split(",")
            suite.add_expectation(expectation)
        suite = context.suites.add(suite)
        outcome = batch.validate(suite, result_format={"result_format": "COMPLETE"})
    finally:
        context.data_sources.delete(source_name)
        if suite_name in [s.name for s in context.suites.all()]:
            context.suites.delete(suite_name)

    reasons: dict[int, list[str]] = {}
    for result in outcome.results:
        meta = result.expectation_config.meta or {}
        label, row_level = meta["paysight_check"], bool(meta["row_level"])
        info = result.exception_info or {}
        if info.get("raised_exception"):
            raise QualityCheckError(
                f"check {label} of suite {suite_spec.name} could not run: "
                f"{info.get('exception_message')}"
            )
        details = result.result or {}
        bad = [int(i) for i in details.get("unexpected_index_list") or []]
        if row_level and not result.success and not bad:
            raise QualityCheckError(f"check {label} failed without naming rows: {details}")
        key = meta.get("unique_key")
        if key and bad:
            # Keep the first copy of a duplicated key as valid: it was accepted first, and
            # quarantining every copy would drop a real payment from the warehouse.
            later = frame.duplicated(subset=list(key), keep="first")
            bad = [i for i in bad if bool(later.iloc[i])]
        for i in bad:
            reasons.setdefault(i, []).append(label)
        observed = details.get("observed_value")
        checks.append(
            CheckResult(
                check=label,
                success=bool(result.success),
                unexpected_count=len(bad) if row_level else int(not result.success),
                row_level=row_level,
                observed=None if observed is None else str(observed),
            )
        )

    original = df.reset_index(drop=True)
    bad_rows = sorted(reasons)
    quarantined = original.iloc[bad_rows].copy()
    quarantined[REASON_COLUMN] = ["; ".join(reasons[i]) for i in bad_rows]
    valid = original.drop(index=bad_rows)
    return QualityResult(valid, quarantined, checks)


# -- suite specs for the raw tables ---------------------------------------------------------

GATEWAYS = ("stripe", "razorpay", "simulated")
GATEWAY_ID = r"^[A-Za-z0-9_\-]{1,255}$"

RAW_PAYMENTS = SuiteSpec(
    name="raw_payments",
    columns=PAYMENT_COLUMNS,
    non_null=("gateway", "gateway_payment_id", "created_at", "status", "amount_minor", "currency"),
    amounts=("amount_minor", "amount_refunded_minor", "fee_minor", "fee_tax_minor"),
    currencies=("currency",),
    enums={
        "gateway": GATEWAYS,
        # Stripe charge statuses + Razorpay payment statuses.
        "status": (
            "succeeded",
            "pending",
            "failed",
            "created",
            "authorized",
            "captured",
            "refunded",
        ),
    },
    unique=(("gateway", "gateway_payment_id"),),
    patterns={"gateway_payment_id": GATEWAY_ID},
)

RAW_REFUNDS = SuiteSpec(
    name="raw_refunds",
    columns=("id", "gateway", "created_at", "status", "amount_minor", "currency", "payment_id"),
    non_null=("id", "gateway", "created_at", "amount_minor", "currency", "payment_id"),
    amounts=("amount_minor",),
    currencies=("currency",),
    enums={
        "gateway": GATEWAYS,
        "status": ("pending", "requires_action", "succeeded", "failed", "canceled", "processed"),
    },
    unique=(("gateway", "id"),),
    patterns={"id": GATEWAY_ID},
)

RAW_SETTLEMENTS = SuiteSpec(
    name="raw_settlements",
    columns=(
        "id",
        "gateway",
        "created_at",
        "status",
        "amount_minor",
        "fee_minor",
        "tax_minor",
        "currency",
        "utr",
    ),
    non_null=("id", "created_at", "amount_minor", "currency"),
    amounts=("amount_minor", "fee_minor", "tax_minor"),
    currencies=("currency",),
    enums={"status": ("created", "processed", "failed")},
    unique=(("gateway", "id"),),
    patterns={"id": GATEWAY_ID},
)

WEBHOOK_EVENTS = SuiteSpec(
    name="raw_webhook_events",
    columns=("received_at", "source", "event_id", "event_type", "signature_verified", "body"),
    non_null=("received_at", "source", "event_id", "event_type", "body"),
    enums={"source": GATEWAYS, "signature_verified": (True,)},
    unique=(("source", "event_id"),),
    patterns={"event_id": r"^[A-Za-z0-9_\-:]{1,128}$"},
    freshness=Freshness("received_at", max_age=timedelta(days=1)),
)

BANK_SETTLEMENTS = SuiteSpec(
    name="raw_bank_settlements",
    columns=(
        "settlement_id",
        "utr",
        "payment_id",
        "gross_minor",
        "fee_minor",
        "tax_minor",
        "net_minor",
        "currency",
        "settled_at",
    ),
    non_null=("settlement_id", "utr", "payment_id", "gross_minor", "net_minor", "currency"),
    amounts=("gross_minor", "fee_minor", "tax_minor", "net_minor"),
    currencies=("currency",),
    unique=(("settlement_id", "payment_id"),),
    freshness=Freshness("settled_at", max_age=timedelta(days=7)),
)

SUITES: dict[str, SuiteSpec] = {
    s.name: s
    for s in (RAW_PAYMENTS, RAW_REFUNDS, RAW_SETTLEMENTS, WEBHOOK_EVENTS, BANK_SETTLEMENTS)
}
