"""GST: GSTIN checksum and state codes, date-effective rates, regimes, tax rounding."""

from __future__ import annotations

import json
from datetime import date
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from billing_jobs.errors import InvalidGSTINError, ValidationError
from billing_jobs.tax.gst import (
    STATE_CODES,
    Regime,
    allocate_signed,
    compute_line_taxes,
    gst_rate_bp,
    gstin_check_char,
    place_of_supply,
    regime_for,
    validate_gstin,
    validate_state_code,
)


def _reference_dir() -> Path:
    here = Path(__file__).resolve()
    repo = next(p for p in here.parents if (p / "pyproject.toml").exists())
    return repo.parent / "shared" / "reference"


def test_state_code_table_matches_reference() -> None:
    path = _reference_dir() / "gst" / "gst_state_codes.json"
    if not path.exists():
        pytest.skip(f"reference data not found at {path}")
    ref = json.loads(path.read_text())["state_numbers"]
    assert {code: name for name, code in ref.items()} == STATE_CODES


@pytest.mark.parametrize("gstin", ["27AAPFU0939F1ZV", "29ABCDE1234F1ZW", "07AAFCD5862R1ZX"])
def test_valid_gstins(gstin: str) -> None:
    assert validate_gstin(gstin.lower()) == gstin


@pytest.mark.parametrize(
    ("gstin", "message"),
    [
        ("27AAPFU0939F1ZW", "checksum"),  # last char altered
        ("27AAPFU0939F1ZV ".strip()[:-1] + "0", "checksum"),
        ("33AAPFU0939F1ZV", "checksum"),  # state changed, checksum no longer matches
        ("25AAPFU0939F1Z" + gstin_check_char("25AAPFU0939F1Z"), "state code"),  # 25 unused
        ("99AAPFU0939F1Z" + gstin_check_char("99AAPFU0939F1Z"), "state code"),
        ("27AAPFU0939F1Z", "malformed"),
        ("27AAPFU0939F1XV", "malformed"),  # 14th char must be Z
        ("2AAAPFU0939F1ZV", "malformed"),
        ("", "malformed"),
        ("27AAPFU0939F1ZV'; DROP TABLE customers;--", "malformed"),
    ],
)
def test_invalid_gstins(gstin: str, message: str) -> None:
    with pytest.raises(InvalidGSTINError, match=message):
        validate_gstin(gstin)


def test_non_string_gstin_refused() -> None:
    with pytest.raises(InvalidGSTINError):
        validate_gstin(27)  # type: ignore[arg-type]


@given(st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=1))
def test_any_single_char_change_breaks_checksum(ch: str) -> None:
    good = "27AAPFU0939F1ZV"
    bad = good[:14] + ch
    if ch != "V":
        with pytest.raises(InvalidGSTINError):
            validate_gstin(bad)


def test_state_codes_validated() -> None:
    assert validate_state_code("29") == "29"
    for bad in ("25", "00", "9", "KA", None):
        with pytest.raises(ValidationError, match="state code"):
            validate_state_code(bad)  # type: ignore[arg-type]


def test_rates_are_date_effective() -> None:
    assert gst_rate_bp("997331", date(2025, 9, 21)) == 1800
    assert gst_rate_bp("997331", date(2025, 9, 22)) == 1800
    assert gst_rate_bp("996311", date(2025, 9, 21)) == 1200
    assert gst_rate_bp("996311", date(2025, 9, 22)) == 500
    assert gst_rate_bp("999721", date(2025, 9, 21)) == 1800
    with pytest.raises(ValidationError, match="no GST rate"):
        gst_rate_bp("123456", date(2025, 1, 1))
    with pytest.raises(ValidationError, match="before"):
        gst_rate_bp("997331", date(2017, 6, 30))


def test_regime_decided_by_place_of_supply() -> None:
    assert regime_for("29", "29", "regular") is Regime.INTRA
    assert regime_for("29", "27", "regular") is Regime.INTER
    assert regime_for("29", "29", "sez") is Regime.ZERO_RATED
    assert regime_for("29", "96", "export") is Regime.ZERO_RATED
    # Registered recipient: place of supply is the GSTIN state, not the billing address.
    assert place_of_supply("29", "27AAPFU0939F1ZV", "regular") == "27"
    assert place_of_supply("27", None, "regular") == "27"
    assert place_of_supply("96", None, "export") == "96"


def test_intra_state_tax_split_and_rounding() -> None:
    # 3 lines of 333.33 at 18%: CGST 9% of 999.99 = 89.9991 -> 90.00; lines share 9000 paise.
    taxes = compute_line_taxes([(33333, 1800)] * 3, Regime.INTRA)
    assert sum(t.cgst_minor for t in taxes) == 9000
    assert sum(t.sgst_minor for t in taxes) == 9000
    assert all(t.igst_minor == 0 for t in taxes)
    assert sorted(t.cgst_minor for t in taxes) == [3000, 3000, 3000]


def test_half_up_at_the_paisa() -> None:
    # 0.25 rupee at 18% IGST = 4.5 paise -> 5 (half-up); at 9% CGST = 2.25 -> 2.
    assert compute_line_taxes([(25, 1800)], Regime.INTER)[0].igst_minor == 5
    assert compute_line_taxes([(25, 1800)], Regime.INTRA)[0].cgst_minor == 2


def test_zero_rated_has_no_tax() -> None:
    taxes = compute_line_taxes([(100000, 1800)], Regime.ZERO_RATED)
    assert taxes[0].total_minor == 0 and taxes[0].rate_bp == 1800


def test_each_rate_group_rounded_on_its_own() -> None:
    taxes = compute_line_taxes([(10001, 1800), (10001, 500), (10001, 1800)], Regime.INTER)
    assert taxes[0].igst_minor + taxes[2].igst_minor == (20002 * 1800 * 2 + 10000) // 20000
    assert taxes[1].igst_minor == 500


@given(
    st.lists(st.integers(min_value=1, max_value=10**9), min_size=1, max_size=12),
    st.sampled_from([500, 1200, 1800, 2800]),
    st.sampled_from([Regime.INTRA, Regime.INTER]),
)
@example([1, 1, 1, 65538, 28791799], 500, Regime.INTRA)  # a component 1.025 paise off exact
def test_line_taxes_sum_to_rounded_invoice_tax(amounts, rate, regime) -> None:
    taxes = compute_line_taxes([(a, rate) for a in amounts], regime)
    total = sum(amounts)
    if regime is Regime.INTER:
        expected = (total * rate * 2 + 10000) // 20000
        assert sum(t.igst_minor for t in taxes) == expected
    else:
        half = (total * (rate // 2) * 2 + 10000) // 20000
        assert sum(t.cgst_minor for t in taxes) == half == sum(t.sgst_minor for t in taxes)
    # Each component of a line is its share of the rounded invoice tax, allocated by largest
    # remainder: within 1 paisa of that share, which is within half a paisa (times the line's
    # weight) of the line's exact tax. So each component is less than 1.5 paise off exact
    # (a component exactly 1 paisa off can happen; 1.025 was found by hypothesis).
    for a, t in zip(amounts, taxes, strict=True):
        if regime is Regime.INTER:
            assert abs(Fraction(t.igst_minor) - Fraction(a * rate, 10000)) < Fraction(3, 2)
        else:
            exact_half = Fraction(a * (rate // 2), 10000)
            assert abs(Fraction(t.cgst_minor) - exact_half) < Fraction(3, 2)
            assert abs(Fraction(t.sgst_minor) - exact_half) < Fraction(3, 2)


@given(
    st.integers(min_value=-(10**9), max_value=10**9),
    st.lists(st.integers(min_value=-(10**6), max_value=10**6), min_size=1, max_size=8),
)
def test_allocate_signed_sums_exactly(total, weights) -> None:
    if sum(weights) == 0:
        if total:
            with pytest.raises(ValidationError):
                allocate_signed(total, weights)
        return
    assert sum(allocate_signed(total, weights)) == total
