"""Plain input model for invoice documents (tax invoices and credit notes).

The ledger maps its invoices onto `InvoiceDocument`; rendering never reads the ledger.
All money is integer minor units of `currency`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from fractions import Fraction

from billing_jobs.money import MoneyError, normalize_currency


class DocumentError(ValueError):
    """An invoice document is malformed or inconsistent; the message names the field."""


class DocumentKind(StrEnum):
    TAX_INVOICE = "tax_invoice"
    CREDIT_NOTE = "credit_note"


# GSTIN: 2-digit state code, 10-char PAN, entity number, 'Z', checksum character.
_GSTIN_RE = re.compile(r"^[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][0-9A-Z]Z[0-9A-Z]$")
# Invoice numbers: at most 16 characters of A-Z a-z 0-9 - / (CGST Rule 46(b)).
_NUMBER_RE = re.compile(r"^[A-Za-z0-9/-]{1,16}$")
_FY_RE = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, slots=True)
class StateRef:
    """A GST state or union territory: name plus two-digit code (e.g. Karnataka, 29)."""

    name: str
    code: str

    def __post_init__(self) -> None:
        if not self.name or not self.name.strip():
            raise DocumentError("state name must not be empty")
        if not re.fullmatch(r"[0-9]{2}", self.code or ""):
            raise DocumentError(f"state code must be two digits, got {self.code!r}")


@dataclass(frozen=True, slots=True)
class Party:
    """Supplier or recipient as printed on the document."""

    name: str
    address: tuple[str, ...]
    state: StateRef
    gstin: str | None = None

    def __post_init__(self) -> None:
        if not self.name or not self.name.strip():
            raise DocumentError("party name must not be empty")
        object.__setattr__(self, "address", tuple(self.address))
        if self.gstin is not None:
            if not _GSTIN_RE.match(self.gstin):
                raise DocumentError(f"GSTIN {self.gstin!r} is not 15 characters in GSTIN format")
            if self.gstin[:2] != self.state.code:
                raise DocumentError(
                    f"GSTIN {self.gstin} starts with state code {self.gstin[:2]} but the "
                    f"address state is {self.state.name} ({self.state.code})"
                )


@dataclass(frozen=True, slots=True)
class Line:
    """One invoice line. Rates are exact percentages as strings/Fractions ("18", "9").
    `discount_minor` is the line's discount: its value before discount is taxable + discount
    (CGST Rule 46: the taxable value is shown after the discount, and the discount with it)."""

    description: str
    sac_hsn: str
    quantity: Fraction | int | str
    unit_price_minor: int
    taxable_value_minor: int
    tax_rate: Fraction | int | str
    cgst_rate: Fraction | int | str = 0
    cgst_minor: int = 0
    sgst_rate: Fraction | int | str = 0
    sgst_minor: int = 0
    igst_rate: Fraction | int | str = 0
    igst_minor: int = 0
    unit: str = "NOS"
    discount_minor: int = 0

    def __post_init__(self) -> None:
        if not self.description.strip():
            raise DocumentError("line description must not be empty")
        if not re.fullmatch(r"[0-9]{4,8}", self.sac_hsn or ""):
            raise DocumentError(f"SAC/HSN must be 4-8 digits, got {self.sac_hsn!r}")
        for name in ("quantity", "tax_rate", "cgst_rate", "sgst_rate", "igst_rate"):
            value = getattr(self, name)
            if isinstance(value, float | bool):
                raise DocumentError(
                    f"line {name} must be exact (int, str, Fraction), not {value!r}"
                )
            try:
                object.__setattr__(self, name, Fraction(value))
            except (ValueError, TypeError, ZeroDivisionError) as exc:
                raise DocumentError(f"line {name} is not a number: {value!r}") from exc
        for name in (
            "unit_price_minor",
            "taxable_value_minor",
            "cgst_minor",
            "sgst_minor",
            "igst_minor",
            "discount_minor",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise DocumentError(f"line {name} must be integer minor units, got {value!r}")

    @property
    def tax_minor(self) -> int:
        return self.cgst_minor + self.sgst_minor + self.igst_minor

    @property
    def value_minor(self) -> int:
        """The line's value before discount."""
        return self.taxable_value_minor + self.discount_minor


@dataclass(frozen=True, slots=True)
class Totals:
    taxable_minor: int
    cgst_minor: int
    sgst_minor: int
    igst_minor: int
    round_off_minor: int
    total_minor: int


@dataclass(frozen=True, slots=True)
class OriginalInvoice:
    """The invoice a credit note adjusts (CGST Rule 53)."""

    number: str
    issue_date: date


@dataclass(frozen=True, slots=True)
class EInvoice:
    """E-invoicing data. `irn` defaults to the SHA-256 of the document identity."""

    irn: str | None = None
    ack_number: str | None = None
    ack_date: date | None = None
    signed_qr: str | None = None  # the IRP's signed QR payload, when the IRP returned one


@dataclass(frozen=True, slots=True)
class InvoiceDocument:
    kind: DocumentKind
    number: str
    issue_date: date
    financial_year: str  # "2025-26"
    supplier: Party
    recipient: Party
    place_of_supply: StateRef
    currency: str
    lines: tuple[Line, ...]
    totals: Totals
    reverse_charge: bool = False
    locale: str = "en_IN"
    original_invoice: OriginalInvoice | None = None
    einvoice: EInvoice | None = None
    brand: str | None = None
    due_date: date | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    reason: str | None = None  # a credit note's reason (downgrade, cancellation, pause, refund)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "kind", DocumentKind(self.kind))
        except ValueError as exc:
            raise DocumentError(f"unknown document kind {self.kind!r}") from exc
        if not _NUMBER_RE.match(self.number or ""):
            raise DocumentError(
                f"document number {self.number!r} must be 1-16 characters of A-Z a-z 0-9 - /"
            )
        m = _FY_RE.match(self.financial_year or "")
        if not m or (int(m.group(1)) + 1) % 100 != int(m.group(2)):
            raise DocumentError(
                f"financial year {self.financial_year!r} must look like 2025-26 (April-March)"
            )
        if fy_of(self.issue_date) != self.financial_year:
            raise DocumentError(
                f"issue date {self.issue_date} falls in FY {fy_of(self.issue_date)}, "
                f"not {self.financial_year}"
            )
        if self.supplier.gstin is None:
            raise DocumentError("supplier GSTIN is mandatory on a tax invoice or credit note")
        try:
            object.__setattr__(self, "currency", normalize_currency(self.currency))
        except MoneyError as exc:
            raise DocumentError(str(exc)) from exc
        object.__setattr__(self, "lines", tuple(self.lines))
        object.__setattr__(self, "notes", tuple(self.notes))
        if not self.lines:
            raise DocumentError("a document needs at least one line")
        if self.kind is DocumentKind.CREDIT_NOTE and self.original_invoice is None:
            raise DocumentError("a credit note must reference the original invoice")
        self._check_totals()

    def _check_totals(self) -> None:
        t = self.totals
        sums = {
            "taxable_minor": sum(ln.taxable_value_minor for ln in self.lines),
            "cgst_minor": sum(ln.cgst_minor for ln in self.lines),
            "sgst_minor": sum(ln.sgst_minor for ln in self.lines),
            "igst_minor": sum(ln.igst_minor for ln in self.lines),
        }
        for name, expected in sums.items():
            if getattr(t, name) != expected:
                raise DocumentError(
                    f"totals.{name} is {getattr(t, name)} but the lines add up to {expected}"
                )
        grand = t.taxable_minor + t.cgst_minor + t.sgst_minor + t.igst_minor + t.round_off_minor
        if grand != t.total_minor:
            raise DocumentError(
                f"totals.total_minor is {t.total_minor} but taxable + taxes + round-off = {grand}"
            )

    @property
    def discount_minor(self) -> int:
        return sum(ln.discount_minor for ln in self.lines)

    @property
    def intra_state(self) -> bool:
        return self.supplier.state.code == self.place_of_supply.code


def fy_of(day: date) -> str:
    """Indian financial year (April-March) containing `day`, e.g. 2026-01-15 -> '2025-26'."""
    start = day.year if day.month >= 4 else day.year - 1
    return f"{start}-{(start + 1) % 100:02d}"
