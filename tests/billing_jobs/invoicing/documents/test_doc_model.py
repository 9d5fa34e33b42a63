"""InvoiceDocument validation: malformed and inconsistent input is refused with a clear message."""

from dataclasses import replace
from datetime import date

import pytest

from billing_jobs.invoicing.documents import (
    DocumentError,
    DocumentKind,
    Line,
    Party,
    StateRef,
    fy_of,
)
from billing_jobs.invoicing.documents.sample import KARNATAKA, SUPPLIER, sample_invoice


def test_sample_is_valid_and_intra_state() -> None:
    doc = sample_invoice(1, 5)
    assert doc.intra_state and doc.financial_year == "2025-26"
    assert not sample_invoice(1, 5, intra_state=False).intra_state


@pytest.mark.parametrize(
    ("day", "fy"),
    [(date(2025, 4, 1), "2025-26"), (date(2026, 3, 31), "2025-26"), (date(2099, 12, 1), "2099-00")],
)
def test_financial_year(day: date, fy: str) -> None:
    assert fy_of(day) == fy


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"number": "INV 1"}, "1-16 characters"),
        ({"number": "INV/2025-26/0000001"}, "1-16 characters"),
        ({"number": "INV_1"}, "1-16 characters"),
        ({"financial_year": "2025-27"}, "must look like 2025-26"),
        ({"financial_year": "2024-25"}, "falls in FY 2025-26"),
        ({"currency": "XYZ"}, "unknown currency"),
        ({"lines": ()}, "at least one line"),
        ({"kind": "proforma"}, "unknown document kind"),
        ({"kind": DocumentKind.CREDIT_NOTE}, "must reference the original invoice"),
        ({"supplier": replace(SUPPLIER, gstin=None)}, "supplier GSTIN is mandatory"),
    ],
)
def test_bad_documents_are_refused(changes: dict, message: str) -> None:
    with pytest.raises(DocumentError, match=message):
        replace(sample_invoice(1, 5), **changes)


def test_totals_must_match_lines() -> None:
    doc = sample_invoice(1, 5)
    with pytest.raises(DocumentError, match=r"totals\.cgst_minor"):
        replace(doc, totals=replace(doc.totals, cgst_minor=doc.totals.cgst_minor + 1))
    with pytest.raises(DocumentError, match="round-off"):
        replace(doc, totals=replace(doc.totals, total_minor=doc.totals.total_minor + 1))


def test_party_validation() -> None:
    with pytest.raises(DocumentError, match="GSTIN format"):
        Party("A", ("x",), KARNATAKA, "29ABC")
    with pytest.raises(DocumentError, match="starts with state code 27"):
        Party("A", ("x",), KARNATAKA, "27AAGFS4321K1Z2")
    with pytest.raises(DocumentError, match="two digits"):
        StateRef("Karnataka", "2")
    with pytest.raises(DocumentError, match="name must not be empty"):
        Party(" ", ("x",), KARNATAKA)
    assert Party("B2C customer", ("x",), KARNATAKA).gstin is None


def test_line_validation() -> None:
    with pytest.raises(DocumentError, match="exact"):
        Line("x", "998314", 1.5, 100, 150, 18)  # type: ignore[arg-type]
    with pytest.raises(DocumentError, match="SAC/HSN"):
        Line("x", "99", 1, 100, 100, 18)
    with pytest.raises(DocumentError, match="integer minor units"):
        Line("x", "998314", 1, 100.0, 100, 18)  # type: ignore[arg-type]
    with pytest.raises(DocumentError, match="not a number"):
        Line("x", "998314", "abc", 100, 100, 18)
    assert Line("x", "998314", "2.5", 100, 250, "18").quantity == 2.5
