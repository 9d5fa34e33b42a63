"""Money: integer minor units, one exponent table, exact allocation, formatting."""

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_jobs.money import (
    CURRENCY_EXPONENTS,
    CurrencyMismatchError,
    Money,
    MoneyError,
    Rounding,
    allocate_minor,
    round_half_up,
    sum_money,
)

currencies = st.sampled_from(sorted(CURRENCY_EXPONENTS))
amounts = st.integers(min_value=-(10**15), max_value=10**15)
weights = st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=40).filter(
    lambda ws: sum(ws) > 0
)


@given(amounts, weights)
def test_allocation_always_sums_to_the_original(total, ws):
    parts = allocate_minor(total, ws)
    assert sum(parts) == total
    assert len(parts) == len(ws)
    assert all(isinstance(p, int) for p in parts)


@given(st.integers(min_value=0, max_value=10**12), weights)
def test_allocation_is_within_one_unit_of_the_exact_share(total, ws):
    parts = allocate_minor(total, ws)
    for part, w in zip(parts, ws, strict=True):
        exact = Fraction(total * w, sum(ws))
        assert abs(part - exact) < 1
        if w == 0:
            assert part == 0


@given(amounts, currencies, st.lists(st.integers(1, 100), min_size=1, max_size=10))
def test_money_allocate_keeps_currency_and_total(total, currency, ws):
    parts = Money(total, currency).allocate(ws)
    assert sum_money(parts, currency) == Money(total, currency)
    assert {p.currency for p in parts} == {currency}


def test_allocation_is_deterministic_and_fair_on_ties():
    assert allocate_minor(100, [1, 1, 1]) == [34, 33, 33]
    assert allocate_minor(-100, [1, 1, 1]) == [-34, -33, -33]
    assert allocate_minor(5, ["0.5", "0.25", "0.25"]) == [3, 1, 1]


@pytest.mark.parametrize("bad", [[], [0, 0], [1, -1], [1.5, 1]])
def test_allocation_rejects_bad_weights(bad):
    with pytest.raises(MoneyError):
        allocate_minor(100, bad)


@given(amounts, amounts, currencies)
def test_addition_and_subtraction_are_exact(a, b, currency):
    assert (Money(a, currency) + Money(b, currency)).amount_minor == a + b
    assert (Money(a, currency) - Money(b, currency)).amount_minor == a - b
    assert (-Money(a, currency)).amount_minor == -a


def test_mixed_currencies_are_refused():
    with pytest.raises(CurrencyMismatchError, match="INR with USD"):
        Money(100, "INR") + Money(100, "USD")
    with pytest.raises(CurrencyMismatchError):
        _ = Money(100, "INR") < Money(100, "USD")


@pytest.mark.parametrize(
    "value",
    [1.5, "100", Decimal("1.0"), True, None],
)
def test_amount_must_be_an_integer(value):
    with pytest.raises(MoneyError, match="amount_minor"):
        Money(value, "INR")


def test_floats_never_touch_money():
    with pytest.raises(MoneyError, match="float"):
        Money(100, "INR").scale(0.5)
    with pytest.raises(MoneyError, match="float"):
        Money.of(1.1, "INR")
    with pytest.raises(MoneyError):
        Money(100, "INR") * 1.5


def test_unknown_currency_is_named():
    with pytest.raises(MoneyError, match="'XYZ'"):
        Money(1, "XYZ")


def test_one_exponent_table():
    assert Money.of("1", "INR").amount_minor == 100
    assert Money.of("1", "JPY").amount_minor == 1
    assert Money.of("1", "KWD").amount_minor == 1000
    with pytest.raises(MoneyError, match="decimal places"):
        Money.of("1.5", "JPY")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("INR 1,23,456.78", Money(12345678, "INR")),
        ("₹1,23,45,678.90", Money(1234567890, "INR")),
        ("1234.5 USD", Money(123450, "USD")),
        ("-12.00 INR", Money(-1200, "INR")),
        ("JPY 1,000", Money(1000, "JPY")),
    ],
)
def test_parse(text, expected):
    assert Money.parse(text) == expected


@pytest.mark.parametrize("text", ["", "INR", "12..3 INR", "INR 10 USD", "1e5 INR", "₹10 USD"])
def test_parse_rejects_garbage(text):
    with pytest.raises(MoneyError):
        Money.parse(text)


def test_indian_digit_grouping():
    assert Money(1234567890, "INR").format("en_IN") == "₹1,23,45,678.90"
    assert Money(-50, "INR").format("en_IN") == "-₹0.50"
    assert Money(123450, "USD").format("en_US") == "$1,234.50"


@given(amounts, currencies)
def test_parse_round_trips_str(a, currency):
    m = Money(a, currency)
    assert Money.parse(str(m)) == m


@given(st.integers(-(10**9), 10**9), st.integers(1, 10**6), st.integers(1, 10**6))
def test_scale_rounds_half_up_once(a, num, den):
    exact = Fraction(a * num, den)
    got = Money(a, "INR").scale(Fraction(num, den)).amount_minor
    assert abs(got - exact) <= Fraction(1, 2)
    if exact - int(exact) == Fraction(1, 2) and exact > 0:
        assert got == int(exact) + 1


def test_rounding_rules():
    assert round_half_up(Fraction(5, 2)) == 3
    assert round_half_up(Fraction(-5, 2)) == -3
    assert Money(5, "INR").scale("0.5", Rounding.HALF_EVEN).amount_minor == 2
    assert Money(5, "INR").scale("0.5", Rounding.DOWN).amount_minor == 2
    assert round_half_up(Decimal("0.49")) == 0
