"""The retention policy (retention_policy.yaml): how long each class of record is kept, validated
at load, and the cut-off instant of each class for a given `as_of`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from billing_jobs.errors import ValidationError
from billing_jobs.periods import require_aware

DEFAULT_POLICY = Path(__file__).resolve().parent / "retention_policy.yaml"
CLASSES = ("payments", "ledger", "invoices", "webhook_bodies", "analytics")
KEYS = frozenset({"keep", "unit", "from"})
# India keeps one time zone without daylight saving: the financial year turns at 00:00 IST.
IST = timezone(timedelta(hours=5, minutes=30))
MAX_YEARS = 100  # a longer period is a typo (days meant as years), and leaves datetime's range


class RetentionPolicyError(ValidationError):
    """The retention policy file is malformed; the message names the class and key."""


class Unit(StrEnum):
    DAYS = "days"
    MONTHS = "months"
    YEARS = "years"


class Start(StrEnum):
    CREATED = "created"
    FINANCIAL_YEAR_END = "financial_year_end"


@dataclass(frozen=True)
class Period:
    keep: int
    unit: Unit
    start: Start

    def describe(self) -> str:
        base = "the end of the financial year" if self.start is Start.FINANCIAL_YEAR_END else ""
        return f"{self.keep} {self.unit.value}" + (f" from {base}" if base else "")


def _minus(moment: datetime, keep: int, unit: Unit) -> datetime:
    if unit is Unit.DAYS:
        return moment - timedelta(days=keep)
    months = keep * (12 if unit is Unit.YEARS else 1)
    index = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(index, 12)
    day = moment.day
    while True:  # 29 February (or the 31st) falls back to the month's last day
        try:
            return moment.replace(year=year, month=month + 1, day=day)
        except ValueError:
            day -= 1


def fy_start(moment: datetime) -> datetime:
    """00:00 IST on April 1 that starts the Indian financial year holding `moment`."""
    local = moment.astimezone(IST)
    year = local.year if local.month >= 4 else local.year - 1
    return datetime(year, 4, 1, tzinfo=IST)


@dataclass(frozen=True)
class RetentionPolicy:
    periods: dict[str, Period]

    def cutoff(self, cls: str, as_of: datetime) -> datetime:
        """Records of `cls` dated before this instant (UTC) are past their term at `as_of`.

        From the financial-year end: a record issued in the year ending March 31 Y is kept
        until `keep` after that day, so it expires when as_of - keep has reached April 1 Y; i.e.
        every record issued before the start of the financial year holding as_of - keep."""
        as_of = require_aware(as_of, "as_of")
        period = self.periods[cls]
        moved = _minus(as_of.astimezone(IST), period.keep, period.unit)
        if period.start is Start.FINANCIAL_YEAR_END:
            moved = fy_start(moved)
        return moved.astimezone(UTC)

    def cutoffs(self, as_of: datetime) -> dict[str, datetime]:
        return {cls: self.cutoff(cls, as_of) for cls in CLASSES}


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice (plain YAML keeps the last silently)."""


def _mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise RetentionPolicyError(f"retention policy: key {key!r} is given twice")
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def _period(cls: str, spec: Any) -> Period:
    where = f"retention policy class {cls!r}"
    if not isinstance(spec, dict):
        raise RetentionPolicyError(f"{where}: expected keep/unit/from, got {spec!r}")
    missing, unknown = sorted(KEYS - set(spec)), sorted(map(str, set(spec) - KEYS))
    if missing:
        raise RetentionPolicyError(f"{where}: missing key(s) {', '.join(missing)}")
    if unknown:
        raise RetentionPolicyError(f"{where}: unknown key(s) {', '.join(unknown)}")
    keep = spec["keep"]
    if isinstance(keep, bool) or not isinstance(keep, int):
        raise RetentionPolicyError(f"{where}: keep must be a whole number, got {keep!r}")
    if keep <= 0:
        raise RetentionPolicyError(f"{where}: keep must be greater than 0, got {keep}")
    try:
        unit = Unit(spec["unit"])
    except ValueError:
        raise RetentionPolicyError(
            f"{where}: unknown unit {spec['unit']!r}; use days, months or years"
        ) from None
    try:
        start = Start(spec["from"])
    except ValueError:
        raise RetentionPolicyError(
            f"{where}: unknown from {spec['from']!r}; use created or financial_year_end"
        ) from None
    per_year = {Unit.DAYS: 366, Unit.MONTHS: 12, Unit.YEARS: 1}[unit]
    if keep > MAX_YEARS * per_year:
        raise RetentionPolicyError(f"{where}: keep {keep} {unit} is over {MAX_YEARS} years")
    return Period(keep, unit, start)


def parse_policy(text: str) -> RetentionPolicy:
    """The policy in YAML `text`; raises RetentionPolicyError naming what is wrong."""
    try:
        doc = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise RetentionPolicyError(f"retention policy is not valid YAML: {exc}") from None
    if not isinstance(doc, dict) or set(doc) != {"classes"}:
        raise RetentionPolicyError("retention policy must have exactly one top-level key: classes")
    classes = doc["classes"]
    if not isinstance(classes, dict):
        raise RetentionPolicyError("retention policy: classes must map class names to periods")
    unknown = sorted(map(str, set(classes) - set(CLASSES)))
    if unknown:
        raise RetentionPolicyError(
            f"retention policy: unknown class(es) {', '.join(unknown)}; known: {', '.join(CLASSES)}"
        )
    missing = [c for c in CLASSES if c not in classes]
    if missing:
        raise RetentionPolicyError(f"retention policy: missing class(es) {', '.join(missing)}")
    return RetentionPolicy({cls: _period(cls, classes[cls]) for cls in CLASSES})


def load_policy(path: Path | str = DEFAULT_POLICY) -> RetentionPolicy:
    """The policy in the YAML file at `path` (default: the one shipped with paysight)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RetentionPolicyError(f"cannot read retention policy {path}: {exc}") from None
    return parse_policy(text)
