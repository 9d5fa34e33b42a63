"""Billing periods: interval arithmetic anchored on the billing-cycle anchor, and IST dates."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta, timezone
from enum import StrEnum
from functools import lru_cache

from billing_jobs.errors import ValidationError

IST = timezone(timedelta(hours=5, minutes=30), "IST")


class Interval(StrEnum):
    """Billing interval units; each is a whole number of months."""

    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"

    @property
    def months(self) -> int:
        return {"month": 1, "quarter": 3, "year": 12}[self.value]


def require_aware(value: datetime, name: str = "timestamp") -> datetime:
    """Return `value` in UTC; naive datetimes are refused (time is always explicit)."""
    if not isinstance(value, datetime):
        raise ValidationError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(f"{name} {value!r} must be timezone-aware")
    return value.astimezone(UTC)


def add_months(anchor: datetime, months: int) -> datetime:
    """`anchor` moved by whole months, clamping the day to the month's end (Jan 31 -> Feb 28)."""
    total = anchor.month - 1 + months
    year, month = anchor.year + total // 12, total % 12 + 1
    day = min(anchor.day, calendar.monthrange(year, month)[1])
    return anchor.replace(year=year, month=month, day=day)


def period_bounds(
    anchor: datetime, interval: Interval | str, interval_count: int, index: int
) -> tuple[datetime, datetime]:
    """Start and end of period number `index` counted from `anchor` (no drift after clamping)."""
    step = Interval(interval).months * interval_count
    return add_months(anchor, step * index), add_months(anchor, step * (index + 1))


@lru_cache(maxsize=4096)
def financial_year(at: datetime) -> str:
    """Indian financial year (April-March, in IST) as 'YYyy', e.g. '2526' for FY 2025-26."""
    local = require_aware(at).astimezone(IST)
    start = local.year if local.month >= 4 else local.year - 1
    return f"{start % 100:02d}{(start + 1) % 100:02d}"


@lru_cache(maxsize=4096)
def ist_date(at: datetime) -> date:
    """The calendar date in India of an instant (invoice date, GST rate lookup)."""
    return require_aware(at).astimezone(IST).date()
