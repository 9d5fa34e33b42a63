"""Per-second proration: the Stripe and Kill Bill examples and additivity properties."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_jobs.errors import ValidationError
from billing_jobs.periods import add_months, financial_year, period_bounds
from billing_jobs.subscriptions.proration import prorate_minor, proration_factor, proration_lines

JAN1 = datetime(2026, 1, 1, tzinfo=UTC)


def test_stripe_example_upgrade_halfway() -> None:
    # 10.00 -> 20.00 monthly, exactly halfway through a 30-day period.
    start, end = datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC)
    p = proration_lines(1000, 2000, start, end, start + (end - start) / 2)
    assert p.factor == Fraction(1, 2)
    assert (p.credit_minor, p.debit_minor, p.net_minor) == (-500, 1000, 500)


def test_kill_bill_example_15_of_30_days_left() -> None:
    start = datetime(2026, 4, 1, tzinfo=UTC)
    end = start + timedelta(days=30)
    p = proration_lines(2000, 3000, start, end, end - timedelta(days=15))
    assert (p.credit_minor, p.debit_minor) == (-1000, 1500)


def test_factor_counts_seconds() -> None:
    end = JAN1 + timedelta(seconds=3)
    assert proration_factor(JAN1, end, JAN1 + timedelta(seconds=1)) == Fraction(2, 3)


def test_factor_rejects_bad_input() -> None:
    with pytest.raises(ValidationError, match="outside"):
        proration_factor(JAN1, JAN1 + timedelta(days=1), JAN1 + timedelta(days=2))
    with pytest.raises(ValidationError, match="after"):
        proration_factor(JAN1, JAN1, JAN1)
    with pytest.raises(ValidationError, match="timezone-aware"):
        proration_factor(JAN1.replace(tzinfo=None), JAN1, JAN1)


@given(
    st.integers(min_value=0, max_value=10**10),
    st.lists(st.integers(min_value=1, max_value=31 * 86400 - 1), max_size=10, unique=True),
)
def test_pieces_of_a_period_add_up(price, cuts) -> None:
    """Splitting a period at any instants, the rounded pieces sum to the full price within one
    minor unit per piece."""
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    points = [start, *(start + timedelta(seconds=c) for c in sorted(cuts)), end]
    pieces = []
    for a, b in itertools.pairwise(points):
        # piece = unused at a minus unused at b
        fa, fb = proration_factor(start, end, a), proration_factor(start, end, b)
        pieces.append(prorate_minor(price, fa - fb))
    assert abs(sum(pieces) - price) <= len(pieces)


@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=0, max_value=10**9))
def test_credit_and_debit_each_within_half_unit(old, new) -> None:
    start, end = JAN1, JAN1 + timedelta(days=31)
    at = JAN1 + timedelta(days=10, seconds=7)
    p = proration_lines(old, new, start, end, at)
    assert abs(-p.credit_minor - old * p.factor) <= Fraction(1, 2)
    assert abs(p.debit_minor - new * p.factor) <= Fraction(1, 2)


def test_month_arithmetic_clamps_without_drift() -> None:
    anchor = datetime(2026, 1, 31, 10, tzinfo=UTC)
    assert add_months(anchor, 1) == datetime(2026, 2, 28, 10, tzinfo=UTC)
    assert period_bounds(anchor, "month", 1, 2)[0] == datetime(2026, 3, 31, 10, tzinfo=UTC)
    assert period_bounds(anchor, "quarter", 1, 1) == (
        datetime(2026, 4, 30, 10, tzinfo=UTC),
        datetime(2026, 7, 31, 10, tzinfo=UTC),
    )
    assert period_bounds(datetime(2024, 2, 29, tzinfo=UTC), "year", 1, 1)[0].day == 28


def test_financial_year_uses_india_time() -> None:
    assert financial_year(datetime(2026, 3, 31, 18, 29, tzinfo=UTC)) == "2526"
    assert financial_year(datetime(2026, 3, 31, 18, 30, tzinfo=UTC)) == "2627"  # 00:00 IST
