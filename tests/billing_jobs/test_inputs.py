"""`billing_jobs.inputs`: the one rule for values from outside (CLI, API, files)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from billing_jobs.inputs import MAX_ID, InputError, instant, integer, ledger_ref


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("1", 1),
        (str(MAX_ID), MAX_ID),
        (42, 42),
        (str(MAX_ID + 1), None),  # past BIGINT: a number to look up as text, never an int bind
        ("9" * 40, None),
        ("0", None),
        (0, None),
        (-3, None),
        (True, None),
        ("\u00b2", None),  # str.isdigit() says yes, int() says no
        ("\u0663", None),  # Arabic-Indic three: not an ASCII id
        ("INV/2627/000001", None),
        ("", None),
        (" 7", None),
    ],
)
def test_ledger_ref_names_an_id_only_when_it_fits_the_ledger(ref, expected):
    assert ledger_ref(ref) == expected


def test_integer_bounds_and_types():
    assert integer("12", "n", lo=1, hi=12) == 12
    with pytest.raises(InputError, match=r"outside 1\.\.12"):
        integer(13, "n", lo=1, hi=12)
    with pytest.raises(InputError, match="not a boolean"):
        integer(True, "n")
    with pytest.raises(InputError, match="not an integer"):
        integer("1e3", "n")


def test_instant_refuses_naive_and_out_of_range_times():
    assert instant("2026-04-01T00:00:00+05:30") == datetime(2026, 3, 31, 18, 30, tzinfo=UTC)
    with pytest.raises(InputError):
        instant("2026-04-01T00:00:00")
    with pytest.raises(InputError):
        instant("2200-01-01T00:00:00Z")
