"""Indian business calendar for the demo world: public holidays and sign-up seasonality."""

from __future__ import annotations

from datetime import date

# Fixed-date national holidays (month, day).
FIXED = {(1, 26): "Republic Day", (8, 15): "Independence Day", (10, 2): "Gandhi Jayanti",
         (12, 25): "Christmas"}  # fmt: skip
# Festivals follow the lunar calendar; dates as gazetted by the Government of India.
MOVABLE: dict[date, str] = {
    date(2024, 3, 25): "Holi", date(2025, 3, 14): "Holi", date(2026, 3, 4): "Holi",
    date(2027, 3, 22): "Holi", date(2028, 3, 11): "Holi",
    date(2024, 4, 11): "Eid al-Fitr", date(2025, 3, 31): "Eid al-Fitr",
    date(2026, 3, 20): "Eid al-Fitr", date(2027, 3, 10): "Eid al-Fitr",
    date(2028, 2, 27): "Eid al-Fitr",
    date(2024, 10, 12): "Dussehra", date(2025, 10, 2): "Dussehra",
    date(2026, 10, 20): "Dussehra", date(2027, 10, 9): "Dussehra",
    date(2028, 9, 27): "Dussehra",
    date(2024, 11, 1): "Diwali", date(2025, 10, 20): "Diwali", date(2026, 11, 8): "Diwali",
    date(2027, 10, 29): "Diwali", date(2028, 10, 17): "Diwali",
}  # fmt: skip
# B2B SaaS buying in India: budgets flush before the financial year closes (March), new budgets
# open in April, and the festive quarter (Oct-Dec) is quiet.
MONTH_FACTOR = {1: 1.0, 2: 1.05, 3: 1.3, 4: 1.15, 5: 0.95, 6: 0.9, 7: 1.0, 8: 0.95, 9: 1.0,
                10: 0.85, 11: 0.8, 12: 0.75}  # fmt: skip


def holiday(day: date) -> str | None:
    """The holiday's name, or None on a working day (weekends are not holidays)."""
    return FIXED.get((day.month, day.day)) or MOVABLE.get(day)


def diwali_week(day: date) -> bool:
    return any(name == "Diwali" and abs((day - d).days) <= 3 for d, name in MOVABLE.items())


def signup_weight(day: date) -> float:
    """Relative sign-up intensity of a calendar day (growth trend is applied by the caller)."""
    w = MONTH_FACTOR[day.month]
    if day.weekday() >= 5:
        w *= 0.35
    if holiday(day):
        w *= 0.15
    elif diwali_week(day):
        w *= 0.5
    return w
