"""Money: an integer count of minor units plus an ISO-4217 currency.

Floats never touch an amount. Fractions of a minor unit only appear inside
`Money.scale` / `allocate`, which use exact rational arithmetic and an explicit
rounding rule, so every amount that leaves this module is an integer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import Enum
from fractions import Fraction
from functools import total_ordering

# The one table of currency exponents (ISO 4217 minor units). Keep it sorted.
CURRENCY_EXPONENTS: dict[str, int] = {
    "AED": 2,
    "AUD": 2,
    "BDT": 2,
    "BHD": 3,
    "BRL": 2,
    "CAD": 2,
    "CHF": 2,
    "CLP": 0,
    "CNY": 2,
    "CZK": 2,
    "DKK": 2,
    "EUR": 2,
    "GBP": 2,
    "HKD": 2,
    "IDR": 2,
    "INR": 2,
    "JOD": 3,
    "JPY": 0,
    "KRW": 0,
    "KWD": 3,
    "LKR": 2,
    "MXN": 2,
    "MYR": 2,
    "NOK": 2,
    "NPR": 2,
    "NZD": 2,
    "OMR": 3,
    "PHP": 2,
    "PKR": 2,
    "PLN": 2,
    "QAR": 2,
    "SAR": 2,
    "SEK": 2,
    "SGD": 2,
    "THB": 2,
    "TND": 3,
    "TRY": 2,
    "USD": 2,
    "VND": 0,
    "ZAR": 2,
}


class MoneyError(ValueError):
    """Raised for invalid money input or operations (unknown currency, mixed currencies...)."""


class CurrencyMismatchError(MoneyError):
    """Raised when an operation mixes two currencies."""


class Rounding(Enum):
    """How a fraction of a minor unit is resolved."""

    HALF_UP = "half_up"  # away from zero at .5 (GST rounding)
    HALF_EVEN = "half_even"
    DOWN = "down"  # toward zero


def normalize_currency(currency: str) -> str:
    """Return the upper-case ISO code, or raise MoneyError naming the bad value."""
    if not isinstance(currency, str):
        raise MoneyError(f"currency must be a string ISO-4217 code, got {currency!r}")
    code = currency.strip().upper()
    if code not in CURRENCY_EXPONENTS:
        raise MoneyError(
            f"unknown currency {currency!r}: expected an ISO-4217 code such as INR, USD or JPY"
        )
    return code


def exponent(currency: str) -> int:
    """Number of decimal places of the currency's minor unit (INR 2, JPY 0, KWD 3)."""
    return CURRENCY_EXPONENTS[normalize_currency(currency)]


def round_fraction(value: Fraction, rounding: Rounding = Rounding.HALF_UP) -> int:
    """Round an exact rational to an integer with an explicit rule."""
    floor = value.numerator // value.denominator
    remainder = value - floor
    if remainder == 0:
        return floor
    if rounding is Rounding.DOWN:
        return floor if value >= 0 else floor + 1
    half = Fraction(1, 2)
    if remainder > half:
        return floor + 1
    if remainder < half:
        return floor
    if rounding is Rounding.HALF_UP:
        return floor + 1 if value > 0 else floor
    return floor if floor % 2 == 0 else floor + 1


def _exact(factor: int | Fraction | Decimal | str) -> Fraction:
    if isinstance(factor, bool):
        raise MoneyError("a boolean is not a number")
    if isinstance(factor, float):
        raise MoneyError(
            "floats are not accepted in money arithmetic; pass an int, Fraction, Decimal or str"
        )
    try:
        return Fraction(factor)
    except (ValueError, TypeError, InvalidOperation) as exc:
        raise MoneyError(f"not an exact number: {factor!r}") from exc


@total_ordering
@dataclass(frozen=True, slots=True)
class Money:
    """An amount in integer minor units of one currency."""

    amount_minor: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.amount_minor, bool) or not isinstance(self.amount_minor, int):
            raise MoneyError(
                f"amount_minor must be an integer count of minor units, got "
                f"{type(self.amount_minor).__name__} {self.amount_minor!r}"
            )
        object.__setattr__(self, "currency", normalize_currency(self.currency))

    # -- construction -----------------------------------------------------------------
    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    @classmethod
    def of(cls, major: int | str | Decimal, currency: str) -> Money:
        """Build from a major-unit amount given exactly ("199.99", Decimal, int)."""
        if isinstance(major, float):
            raise MoneyError("floats are not accepted; pass the amount as a string or Decimal")
        code = normalize_currency(currency)
        try:
            dec = Decimal(str(major)) if not isinstance(major, Decimal) else major
        except InvalidOperation as exc:
            raise MoneyError(f"not a number: {major!r}") from exc
        if not dec.is_finite():
            raise MoneyError(f"not a finite amount: {major!r}")
        scaled = dec.scaleb(CURRENCY_EXPONENTS[code])
        if scaled != scaled.to_integral_value():
            raise MoneyError(
                f"{major!r} has more decimal places than {code} allows ({CURRENCY_EXPONENTS[code]})"
            )
        return cls(int(scaled), code)

    @classmethod
    def parse(cls, text: str, currency: str | None = None) -> Money:
        """Parse "INR 1,23,456.78", "1234.5 USD", "₹1,23,456.78" or "-12.00" (with currency).

        Digit-group separators (commas, spaces, underscores) are accepted in any grouping.
        """
        if not isinstance(text, str):
            raise MoneyError(f"expected text to parse, got {type(text).__name__}")
        raw = text.strip()
        found: str | None = None
        for symbol, code in _SYMBOLS.items():
            if symbol in raw:
                found = code
                raw = raw.replace(symbol, "")
        m = re.fullmatch(
            r"\s*([A-Za-z]{3})?\s*([-+]?)\s*([0-9][0-9,_ ]*(?:\.[0-9]+)?)\s*([A-Za-z]{3})?\s*", raw
        )
        if not m:
            raise MoneyError(f"cannot parse money from {text!r}")
        prefix, sign, digits, suffix = m.groups()
        codes = {c.upper() for c in (prefix, suffix, found, currency) if c}
        if len(codes) > 1:
            raise MoneyError(f"conflicting currencies in {text!r}: {sorted(codes)}")
        if not codes:
            raise MoneyError(f"no currency in {text!r} and none given")
        number = re.sub(r"[,_ ]", "", digits)
        return cls.of(f"{sign}{number}", codes.pop())

    # -- views ------------------------------------------------------------------------
    @property
    def exponent(self) -> int:
        return CURRENCY_EXPONENTS[self.currency]

    def to_decimal(self) -> Decimal:
        """The major-unit amount as an exact Decimal (for display and export only)."""
        return Decimal(self.amount_minor).scaleb(-self.exponent)

    def is_zero(self) -> bool:
        return self.amount_minor == 0

    def is_negative(self) -> bool:
        return self.amount_minor < 0

    # -- arithmetic -------------------------------------------------------------------
    def _check(self, other: object) -> Money:
        if not isinstance(other, Money):
            raise MoneyError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatchError(
                f"cannot combine {self.currency} with {other.currency}; convert explicitly first"
            )
        return other

    def __add__(self, other: Money) -> Money:
        return Money(self.amount_minor + self._check(other).amount_minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        return Money(self.amount_minor - self._check(other).amount_minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount_minor, self.currency)

    def __abs__(self) -> Money:
        return Money(abs(self.amount_minor), self.currency)

    def __mul__(self, factor: int) -> Money:
        if isinstance(factor, bool) or not isinstance(factor, int):
            raise MoneyError(
                "Money * x only takes an int; use Money.scale(x, rounding) for fractions"
            )
        return Money(self.amount_minor * factor, self.currency)

    __rmul__ = __mul__

    def __lt__(self, other: Money) -> bool:
        return self.amount_minor < self._check(other).amount_minor

    def scale(
        self, factor: int | Fraction | Decimal | str, rounding: Rounding = Rounding.HALF_UP
    ) -> Money:
        """Multiply by an exact factor (rate, proration fraction) and round once."""
        return Money(round_fraction(self.amount_minor * _exact(factor), rounding), self.currency)

    def allocate(self, weights: Sequence[int | Fraction | Decimal | str]) -> list[Money]:
        """Split into parts proportional to `weights` that sum exactly to self."""
        return [Money(a, self.currency) for a in allocate_minor(self.amount_minor, weights)]

    # -- formatting -------------------------------------------------------------------
    def format(self, locale: str = "en_IN") -> str:
        """Locale formatting via Babel; en_IN/hi_IN use Indian grouping (₹1,23,45,678.90)."""
        from babel.numbers import format_currency

        return format_currency(self.to_decimal(), self.currency, locale=locale)

    def __str__(self) -> str:
        return f"{self.to_decimal():f} {self.currency}"


_SYMBOLS = {"₹": "INR", "$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY"}


def allocate_minor(total: int, weights: Sequence[int | Fraction | Decimal | str]) -> list[int]:
    """Largest-remainder allocation of an integer across weights; parts sum to `total`.

    Ties in remainders go to the earlier weight, so the result is deterministic. Negative
    totals are allocated as the mirror image of the positive case.
    """
    if isinstance(total, bool) or not isinstance(total, int):
        raise MoneyError(f"total must be an integer count of minor units, got {total!r}")
    exact = [_exact(w) for w in weights]
    if not exact:
        raise MoneyError("cannot allocate across an empty list of weights")
    if any(w < 0 for w in exact):
        raise MoneyError("allocation weights must not be negative")
    weight_sum = sum(exact)
    if weight_sum == 0:
        raise MoneyError("allocation weights must not all be zero")
    if total < 0:
        return [-p for p in allocate_minor(-total, weights)]
    shares = [total * w / weight_sum for w in exact]
    parts = [s.numerator // s.denominator for s in shares]
    leftover = total - sum(parts)
    order = sorted(range(len(shares)), key=lambda i: (-(shares[i] - parts[i]), i))
    for i in order[:leftover]:
        parts[i] += 1
    return parts


def sum_money(items: Iterable[Money], currency: str) -> Money:
    """Sum amounts of one currency; an empty iterable gives zero in `currency`."""
    total = Money.zero(currency)
    for item in items:
        total = total + item
    return total


def round_half_up(value: Fraction | Decimal | int) -> int:
    """Half-up rounding of an exact value to an integer (used for tax to the paisa)."""
    return round_fraction(_exact(value), Rounding.HALF_UP)


# Keep Decimal quantization available for exporters that need fixed decimal strings.
def to_major_string(amount_minor: int, currency: str) -> str:
    exp = exponent(currency)
    q = Decimal(1).scaleb(-exp)
    return str(Decimal(amount_minor).scaleb(-exp).quantize(q, rounding=ROUND_HALF_UP))
