"""Per-second proration (Stripe): f = (period_end - t) / (period_end - period_start)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

from billing_jobs.errors import ValidationError
from billing_jobs.money import round_fraction
from billing_jobs.periods import require_aware


def proration_factor(period_start: datetime, period_end: datetime, at: datetime) -> Fraction:
    """Unused fraction of the period at instant `at`, counted in whole seconds."""
    start, end, t = (require_aware(x) for x in (period_start, period_end, at))
    if end <= start:
        raise ValidationError(f"period end {end} must be after its start {start}")
    if not start <= t <= end:
        raise ValidationError(f"proration instant {t} is outside the period {start} .. {end}")
    total = int((end - start).total_seconds())
    left = int((end - t).total_seconds())
    return Fraction(left, total)


def prorate_minor(amount_minor: int, factor: Fraction) -> int:
    """amount x factor rounded half-up (away from zero) to the minor unit."""
    return round_fraction(amount_minor * factor)


@dataclass(frozen=True, slots=True)
class ProrationLines:
    """The credit for unused time on the old price and the charge for the new one."""

    factor: Fraction
    credit_minor: int  # negative or zero
    debit_minor: int  # positive or zero

    @property
    def net_minor(self) -> int:
        return self.credit_minor + self.debit_minor


def proration_lines(
    old_amount_minor: int,
    new_amount_minor: int,
    period_start: datetime,
    period_end: datetime,
    at: datetime,
) -> ProrationLines:
    """Credit -old*f and debit +new*f for a change at `at` within the period."""
    f = proration_factor(period_start, period_end, at)
    return ProrationLines(
        f, -prorate_minor(old_amount_minor, f), prorate_minor(new_amount_minor, f)
    )
