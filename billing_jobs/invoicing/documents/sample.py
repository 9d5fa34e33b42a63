"""Seeded, internally consistent sample documents for previews, tests and benchmarks."""

from __future__ import annotations

import random
from datetime import date, timedelta
from fractions import Fraction

from billing_jobs.invoicing.documents.model import (
    DocumentKind,
    EInvoice,
    InvoiceDocument,
    Line,
    OriginalInvoice,
    Party,
    StateRef,
    Totals,
    fy_of,
)
from billing_jobs.money import round_half_up

KARNATAKA = StateRef("Karnataka", "29")
MAHARASHTRA = StateRef("Maharashtra", "27")

SUPPLIER = Party(
    name="Paysight Demo Services Private Limited",
    address=("4th Floor, 12 Residency Road", "Bengaluru 560025"),
    state=KARNATAKA,
    gstin="29AABCP1234C1Z5",
)
RECIPIENT_LOCAL = Party(
    name="Anand Traders LLP",
    address=("88 Jayanagar 4th Block", "Bengaluru 560011"),
    state=KARNATAKA,
    gstin="29AAKFA9876B1ZQ",
)
RECIPIENT_OTHER = Party(
    name="श्री गणेश एंटरप्राइजेज",
    address=("Plot 7, MIDC Bhosari", "Pune 411026"),
    state=MAHARASHTRA,
    gstin="27AAGFS4321K1Z2",
)

_ITEMS = [
    ("Pro plan subscription (monthly)", "998314"),
    ("Additional seats", "998314"),
    ("API usage overage (per 1,000 calls)", "998315"),
    ("Onboarding and training", "998393"),
    ("Priority support", "998316"),
    ("SMS notifications pack", "998414"),
    ("सदस्यता शुल्क - प्रो योजना", "998314"),
    ("Data export add-on", "998315"),
]


def make_line(
    description: str, sac: str, qty: int, unit_minor: int, rate: int, intra: bool
) -> Line:
    taxable = qty * unit_minor
    if intra:
        half = Fraction(rate, 2)
        tax = round_half_up(Fraction(taxable) * half / 100)
        return Line(description, sac, qty, unit_minor, taxable, rate, half, tax, half, tax)
    tax = round_half_up(Fraction(taxable) * rate / 100)
    return Line(description, sac, qty, unit_minor, taxable, rate, igst_rate=rate, igst_minor=tax)


def totals_for(lines: list[Line], round_to_rupee: bool = True) -> Totals:
    taxable = sum(ln.taxable_value_minor for ln in lines)
    cgst = sum(ln.cgst_minor for ln in lines)
    sgst = sum(ln.sgst_minor for ln in lines)
    igst = sum(ln.igst_minor for ln in lines)
    gross = taxable + cgst + sgst + igst
    total = round_half_up(Fraction(gross, 100)) * 100 if round_to_rupee else gross
    return Totals(taxable, cgst, sgst, igst, total - gross, total)


def sample_invoice(
    seed: int = 1,
    n_lines: int = 8,
    *,
    intra_state: bool = True,
    kind: DocumentKind = DocumentKind.TAX_INVOICE,
    einvoice: bool = True,
    issue_date: date = date(2025, 10, 3),
    brand: str | None = None,
) -> InvoiceDocument:
    rng = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        desc, sac = rng.choice(_ITEMS)
        lines.append(
            make_line(
                desc,
                sac,
                rng.randint(1, 40),
                rng.randint(99, 250_000) * 100 + rng.choice((0, 50, 99)),
                rng.choice((18, 18, 18, 5, 12)),
                intra_state,
            )
        )
    fy = fy_of(issue_date)
    prefix = "CN" if kind is DocumentKind.CREDIT_NOTE else "INV"
    number = f"{prefix}/{fy[2:4]}{fy[5:]}/{seed % 100000:05d}"
    return InvoiceDocument(
        kind=kind,
        number=number,
        issue_date=issue_date,
        financial_year=fy,
        supplier=SUPPLIER,
        recipient=RECIPIENT_LOCAL if intra_state else RECIPIENT_OTHER,
        place_of_supply=KARNATAKA if intra_state else MAHARASHTRA,
        currency="INR",
        lines=tuple(lines),
        totals=totals_for(lines),
        due_date=issue_date + timedelta(days=15),
        original_invoice=(
            OriginalInvoice(f"INV/{fy[2:4]}{fy[5:]}/00001", issue_date - timedelta(days=20))
            if kind is DocumentKind.CREDIT_NOTE
            else None
        ),
        einvoice=EInvoice(ack_number=f"1125{seed:010d}") if einvoice else None,
        brand=brand,
        notes=("Payment by UPI or NEFT to the account on your dashboard.",),
    )
