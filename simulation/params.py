"""Validated parameters of a simulation run; bad values raise `SimulationError` naming the field."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

EARLIEST_START = date(2017, 7, 1)  # GST began on 1 July 2017
LATEST_START = date(2090, 1, 1)
MAX_CUSTOMERS = 200_000
MAX_MONTHS = 120


class SimulationError(ValueError):
    """The simulation was asked for something impossible; the message names the parameter."""


@dataclass(frozen=True)
class SimulationParams:
    customers: int
    months: int
    seed: int
    start: date
    run_dir: Path

    @property
    def days(self) -> int:
        end = add_months(self.start, self.months)
        return (end - self.start).days


def add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    day = min(d.day, calendar.monthrange(year, month)[1])
    return date(year, month, day)


def _int(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SimulationError(f"{name} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise SimulationError(f"{name} must be between {low} and {high}, got {value}")
    return value


def parse_start(start: object) -> date:
    """A date, or an ISO date string (YYYY-MM-DD), between GST's start and 2090."""
    if isinstance(start, datetime):
        raise SimulationError(f"start must be a date (YYYY-MM-DD), not a datetime: {start!r}")
    if isinstance(start, str):
        try:
            start = date.fromisoformat(start.strip())
        except ValueError:
            raise SimulationError(f"start {start!r} is not an ISO date (YYYY-MM-DD)") from None
    if not isinstance(start, date):
        raise SimulationError(f"start must be a date or 'YYYY-MM-DD', got {start!r}")
    if not EARLIEST_START <= start <= LATEST_START:
        raise SimulationError(
            f"start {start.isoformat()} must be between {EARLIEST_START} (GST began) "
            f"and {LATEST_START}"
        )
    return start


def make_params(
    customers: object, months: object, seed: object, start: object, run_dir: str | Path
) -> SimulationParams:
    return SimulationParams(
        customers=_int("customers", customers, 1, MAX_CUSTOMERS),
        months=_int("months", months, 1, MAX_MONTHS),
        seed=_int("seed", seed, 0, 2**63 - 1),
        start=parse_start(start),
        run_dir=Path(run_dir),
    )
