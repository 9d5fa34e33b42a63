"""Amount in words: Indian numbering (lakh, crore) in English and Hindi."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_jobs.invoicing.documents.words import _HI_0_99, amount_in_words, integer_in_words


def test_brief_example_english() -> None:
    assert amount_in_words(1234567890, "INR") == (
        "Rupees One Crore Twenty-Three Lakh Forty-Five Thousand Six Hundred Seventy-Eight "
        "and Ninety Paise Only"
    )


def test_brief_example_hindi() -> None:
    assert amount_in_words(1234567890, "INR", "hi") == (
        "एक करोड़ तेईस लाख पैंतालीस हज़ार छह सौ अठहत्तर रुपये और नब्बे पैसे मात्र"
    )


@pytest.mark.parametrize(
    ("n", "en", "hi"),
    [
        (0, "Zero", "शून्य"),
        (7, "Seven", "सात"),
        (19, "Nineteen", "उन्नीस"),
        (20, "Twenty", "बीस"),
        (99, "Ninety-Nine", "निन्यानवे"),
        (100, "One Hundred", "एक सौ"),
        (1000, "One Thousand", "एक हज़ार"),
        (100000, "One Lakh", "एक लाख"),
        (1005001, "Ten Lakh Five Thousand One", "दस लाख पाँच हज़ार एक"),
        (10000000, "One Crore", "एक करोड़"),
        (
            999999999,
            "Ninety-Nine Crore Ninety-Nine Lakh Ninety-Nine Thousand Nine Hundred Ninety-Nine",
            None,
        ),
        (1000000000, "One Hundred Crore", "एक सौ करोड़"),
        (
            123456700000000,
            "One Crore Twenty-Three Lakh Forty-Five Thousand Six Hundred Seventy Crore",
            None,
        ),
    ],
)
def test_integer_words(n: int, en: str, hi: str | None) -> None:
    assert integer_in_words(n) == en
    if hi is not None:
        assert integer_in_words(n, "hi") == hi


def test_whole_rupees_and_paise_only() -> None:
    assert amount_in_words(50000, "INR") == "Rupees Five Hundred Only"
    assert amount_in_words(5, "INR") == "Rupees Zero and Five Paise Only"
    assert amount_in_words(-150, "INR") == "Minus Rupees One and Fifty Paise Only"
    assert amount_in_words(150, "INR", "hi") == "एक रुपये और पचास पैसे मात्र"


def test_other_currencies_use_code_and_fraction() -> None:
    assert amount_in_words(1050, "USD") == "USD Ten and 50/100 Only"
    assert amount_in_words(1500, "JPY") == "JPY One Thousand Five Hundred Only"


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        integer_in_words(-1)
    with pytest.raises(ValueError, match="minor units"):
        amount_in_words(12.5, "INR")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'en' and 'hi'"):
        integer_in_words(5, "fr")
    with pytest.raises(ValueError, match="unknown currency"):
        amount_in_words(5, "XXX")


_EN_VALUES = {
    w: i
    for i, w in enumerate(
        [
            "Zero",
            "One",
            "Two",
            "Three",
            "Four",
            "Five",
            "Six",
            "Seven",
            "Eight",
            "Nine",
            "Ten",
            "Eleven",
            "Twelve",
            "Thirteen",
            "Fourteen",
            "Fifteen",
            "Sixteen",
            "Seventeen",
            "Eighteen",
            "Nineteen",
        ]
    )
}
_EN_VALUES |= {
    w: 10 * i
    for i, w in enumerate(
        ["_", "_", "Twenty", "Thirty", "Forty", "Fifty", "Sixty", "Seventy", "Eighty", "Ninety"]
    )
    if i >= 2
}
_SCALE = {"Hundred": 100, "Thousand": 1000, "Lakh": 100_000, "Crore": 10_000_000}


def _parse_en(text: str) -> int:
    """Independent reader of Indian-numbered English words (for the round-trip property)."""
    total, current = 0, 0
    for token in re.split(r"[ -]", text):
        if token in _EN_VALUES:
            current += _EN_VALUES[token]
        elif token == "Hundred":
            current *= 100
        elif token == "Crore":
            total = (total + current) * 10_000_000
            current = 0
        else:
            total += current * _SCALE[token]
            current = 0
    return total + current


@given(st.integers(min_value=0, max_value=10**15))
def test_english_round_trips(n: int) -> None:
    words = integer_in_words(n)
    assert _parse_en(words) == n
    assert "Million" not in words and "Billion" not in words


_HI_VALUES = {w: i for i, w in enumerate(_HI_0_99)}


def _parse_hi(text: str) -> int:
    total, current = 0, 0
    for token in text.split():
        if token in _HI_VALUES:
            current += _HI_VALUES[token]
        elif token == "सौ":
            current *= 100
        elif token == "करोड़":
            total = (total + current) * 10_000_000
            current = 0
        else:
            total += current * {"हज़ार": 1000, "लाख": 100_000}[token]
            current = 0
    return total + current


@given(st.integers(min_value=0, max_value=10**13))
def test_hindi_round_trips(n: int) -> None:
    assert _parse_hi(integer_in_words(n, "hi")) == n


def test_hindi_table_has_distinct_words() -> None:
    assert len(set(_HI_0_99)) == 100
