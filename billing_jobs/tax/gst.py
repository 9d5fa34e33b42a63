"""Indian GST: state codes, GSTIN validation, date-effective rates and tax computation."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from functools import lru_cache

from billing_jobs.errors import InvalidGSTINError, ValidationError

# GST state/UT codes (public facts, CBIC). 96/97 are used for exports and other territory.
STATE_CODES: dict[str, str] = {
    "01": "Jammu and Kashmir",
    "02": "Himachal Pradesh",
    "03": "Punjab",
    "04": "Chandigarh",
    "05": "Uttarakhand",
    "06": "Haryana",
    "07": "Delhi",
    "08": "Rajasthan",
    "09": "Uttar Pradesh",
    "10": "Bihar",
    "11": "Sikkim",
    "12": "Arunachal Pradesh",
    "13": "Nagaland",
    "14": "Manipur",
    "15": "Mizoram",
    "16": "Tripura",
    "17": "Meghalaya",
    "18": "Assam",
    "19": "West Bengal",
    "20": "Jharkhand",
    "21": "Odisha",
    "22": "Chhattisgarh",
    "23": "Madhya Pradesh",
    "24": "Gujarat",
    "26": "Dadra and Nagar Haveli and Daman and Diu",
    "27": "Maharashtra",
    "29": "Karnataka",
    "30": "Goa",
    "31": "Lakshadweep Islands",
    "32": "Kerala",
    "33": "Tamil Nadu",
    "34": "Puducherry",
    "35": "Andaman and Nicobar Islands",
    "36": "Telangana",
    "37": "Andhra Pradesh",
    "38": "Ladakh",
    "96": "Other Countries",
    "97": "Other Territory",
}
EXPORT_PLACE_OF_SUPPLY = "96"

_GSTIN_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_GSTIN_SHAPE = re.compile(r"[0-9]{2}[A-Z]{5}[0-9]{4}[A-Z][1-9A-Z]Z[0-9A-Z]")


class TaxStatus(StrEnum):
    """How the customer's supplies are taxed."""

    REGULAR = "regular"
    SEZ = "sez"
    EXPORT = "export"


class Regime(StrEnum):
    """Which GST components apply to one invoice."""

    INTRA = "intra"  # CGST + SGST
    INTER = "inter"  # IGST
    ZERO_RATED = "zero_rated"  # SEZ or export under LUT: IGST at 0%


def validate_state_code(code: str) -> str:
    """Return the two-digit state code or raise naming the bad value."""
    if not isinstance(code, str) or code not in STATE_CODES:
        raise ValidationError(f"unknown GST state code {code!r}: expected one of 01..38, 96, 97")
    return code


def gstin_check_char(first14: str) -> str:
    """The GSTIN check character: base-36 weighted sum (weights 1,2 alternating) mod 36."""
    total = 0
    for i, ch in enumerate(first14):
        product = _GSTIN_ALPHABET.index(ch) * (1 if i % 2 == 0 else 2)
        total += product // 36 + product % 36
    return _GSTIN_ALPHABET[(36 - total % 36) % 36]


def validate_gstin(gstin: str) -> str:
    """Return the normalized GSTIN or raise InvalidGSTINError saying which part is wrong."""
    if not isinstance(gstin, str):
        raise InvalidGSTINError(f"GSTIN must be a string, got {type(gstin).__name__}")
    value = gstin.strip().upper()
    if len(value) != 15 or not _GSTIN_SHAPE.fullmatch(value):
        raise InvalidGSTINError(
            f"GSTIN {gstin!r} is malformed: expected 15 characters "
            "(2-digit state, 10-character PAN, entity number, 'Z', check character)"
        )
    if value[:2] not in STATE_CODES or value[:2] in ("96", "97"):
        raise InvalidGSTINError(f"GSTIN {gstin!r} has unknown state code {value[:2]!r}")
    expected = gstin_check_char(value[:14])
    if value[14] != expected:
        raise InvalidGSTINError(
            f"GSTIN {gstin!r} fails its checksum: check character should be {expected!r}"
        )
    return value


@dataclass(frozen=True, slots=True)
class RateChange:
    """A GST rate (basis points) for a SAC/HSN code effective from a date (inclusive)."""

    effective_from: date
    rate_bp: int


# Date-effective rate table, basis points. SaaS services stayed at 18% through the
# 2025-09-22 slab rationalisation; hotel accommodation (996311, tariff up to ₹7,500)
# moved 12% -> 5% and beauty/wellness (999721) 18% -> 5% on that date.
RATE_TABLE: dict[str, tuple[RateChange, ...]] = {
    "998314": (RateChange(date(2017, 7, 1), 1800),),  # IT design and development
    "997331": (RateChange(date(2017, 7, 1), 1800),),  # licensing right to use software
    "998313": (RateChange(date(2017, 7, 1), 1800),),  # IT consulting and support
    "996311": (RateChange(date(2017, 7, 1), 1200), RateChange(date(2025, 9, 22), 500)),
    "999721": (RateChange(date(2017, 7, 1), 1800), RateChange(date(2025, 9, 22), 500)),
}
SLAB_CHANGE_DATE = date(2025, 9, 22)


@lru_cache(maxsize=4096)
def gst_rate_bp(sac: str, on: date) -> int:
    """GST rate in basis points for `sac` on the invoice date `on`."""
    changes = RATE_TABLE.get(sac)
    if changes is None:
        raise ValidationError(f"no GST rate known for SAC/HSN {sac!r}; add it to RATE_TABLE")
    current = None
    for change in changes:
        if change.effective_from <= on:
            current = change
    if current is None:
        raise ValidationError(f"no GST rate for SAC/HSN {sac!r} before {changes[0].effective_from}")
    return current.rate_bp


@lru_cache(maxsize=4096)
def place_of_supply(state_code: str, gstin: str | None, tax_status: TaxStatus | str) -> str:
    """Place of supply for services (IGST Act s.12): the registered recipient's GSTIN state,
    else the address on record; exports go to 96 (Other Countries)."""
    if TaxStatus(tax_status) is TaxStatus.EXPORT:
        return EXPORT_PLACE_OF_SUPPLY
    if gstin:
        return gstin[:2]
    return state_code


@lru_cache(maxsize=4096)
def regime_for(supplier_state: str, pos: str, tax_status: TaxStatus | str) -> Regime:
    """CGST+SGST when supplier state equals place of supply, IGST otherwise, zero-rated for
    SEZ units and exports (supplied under LUT)."""
    if TaxStatus(tax_status) in (TaxStatus.SEZ, TaxStatus.EXPORT):
        return Regime.ZERO_RATED
    return Regime.INTRA if supplier_state == pos else Regime.INTER


def _half_up_bp(amount: int, bp: int) -> int:
    """round_half_up(amount * bp / 10000) in integer arithmetic (sign-symmetric)."""
    if amount < 0:
        return -_half_up_bp(-amount, bp)
    return (amount * bp * 2 + 10000) // 20000


def allocate_signed(total: int, weights: Sequence[int]) -> list[int]:
    """Largest-remainder allocation that also accepts mixed-sign weights (proration credits).

    Parts sum exactly to `total`; with same-sign weights each part is within one unit of its
    exact share."""
    wsum = sum(weights)
    if wsum == 0:
        if total != 0:
            raise ValidationError("cannot allocate a non-zero tax across lines that net to zero")
        return [0] * len(weights)
    if wsum < 0:
        return [-p for p in allocate_signed(-total, [-w for w in weights])]
    parts = [(total * w) // wsum for w in weights]
    rema = [(total * w) % wsum for w in weights]
    leftover = total - sum(parts)
    order = sorted(range(len(weights)), key=lambda i: (-rema[i], i))
    for i in order[:leftover]:
        parts[i] += 1
    return parts


@dataclass(frozen=True, slots=True)
class LineTax:
    """Tax allocated to one line."""

    rate_bp: int
    cgst_minor: int
    sgst_minor: int
    igst_minor: int

    @property
    def total_minor(self) -> int:
        return self.cgst_minor + self.sgst_minor + self.igst_minor


def compute_line_taxes(lines: Sequence[tuple[int, int]], regime: Regime) -> list[LineTax]:
    """Tax per (taxable_minor, rate_bp) line.

    Per rate and component (CGST, SGST, IGST) the tax is component rate x the group's taxable
    total, rounded half-up to the paisa, then allocated to lines by largest remainder so line
    taxes sum to the invoice figure."""
    out: list[list[int]] = [[rate, 0, 0, 0] for _, rate in lines]
    groups: dict[int, list[int]] = {}
    for i, (_, rate) in enumerate(lines):
        groups.setdefault(rate, []).append(i)
    for rate, idx in groups.items():
        taxable = [lines[i][0] for i in idx]
        group_total = sum(taxable)
        if regime is Regime.ZERO_RATED:
            continue
        if regime is Regime.INTRA:
            # CGST and SGST are each half the rate, each rounded on its own.
            if rate % 2:
                raise ValidationError(f"rate {rate} bp cannot be split into CGST+SGST halves")
            comps: tuple[tuple[int, int], ...] = ((1, rate // 2), (2, rate // 2))
        else:
            comps = ((3, rate),)
        for slot, comp_rate in comps:
            tax = _half_up_bp(group_total, comp_rate)
            for i, part in zip(idx, allocate_signed(tax, taxable), strict=True):
                out[i][slot] = part
    return [LineTax(r, c, s, g) for r, c, s, g in out]
