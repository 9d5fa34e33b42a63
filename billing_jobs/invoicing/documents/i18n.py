"""Labels and locale-aware formatting (Babel) for invoice documents: English, Hindi, Marathi."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache

from babel import Locale
from babel.dates import format_date
from babel.numbers import (
    NumberPattern,
    format_currency,
    format_decimal,
    get_currency_symbol,
    parse_pattern,
)

from billing_jobs.money import Money, exponent

LANGUAGES = ("en", "hi", "mr")
LOCALES = {"en": "en_IN", "hi": "hi_IN", "mr": "mr_IN"}

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "tax_invoice": "Tax Invoice",
        "credit_note": "Credit Note",
        "number": "Invoice No.",
        "credit_note_number": "Credit Note No.",
        "date": "Date",
        "due_date": "Due Date",
        "original_invoice": "Against Invoice No.",
        "original_date": "Original Invoice Date",
        "place_of_supply": "Place of Supply",
        "reverse_charge": "Tax payable on reverse charge",
        "yes": "Yes",
        "no": "No",
        "supplier": "Supplier",
        "recipient": "Bill To",
        "gstin": "GSTIN",
        "unregistered": "Unregistered",
        "state": "State",
        "code": "Code",
        "sl": "#",
        "description": "Description",
        "sac_hsn": "SAC/HSN",
        "qty": "Qty",
        "rate": "Unit Price",
        "taxable_value": "Taxable Value",
        "cgst": "CGST",
        "sgst": "SGST",
        "igst": "IGST",
        "amount": "Amount",
        "total_taxable": "Total Taxable Value",
        "round_off": "Round-off",
        "total": "Total",
        "amount_in_words": "Amount in words",
        "for": "For",
        "signatory": "Authorised Signatory",
        "irn": "IRN",
        "ack": "Ack No.",
        "computer_generated": "This is a computer-generated document.",
        "financial_year": "FY",
        "discount": "Discount",
        "value": "Value",
        "value_before_discount": "Value before discount",
        "reason": "Reason",
        "reason_downgrade": "Plan change",
        "reason_cancellation": "Cancellation",
        "reason_pause": "Pause",
        "reason_refund": "Refund",
    },
    "hi": {
        "tax_invoice": "कर बीजक",
        "credit_note": "क्रेडिट नोट",
        "number": "बीजक संख्या",
        "credit_note_number": "क्रेडिट नोट संख्या",
        "date": "दिनांक",
        "due_date": "देय तिथि",
        "original_invoice": "मूल बीजक संख्या",
        "original_date": "मूल बीजक दिनांक",
        "place_of_supply": "आपूर्ति का स्थान",
        "reverse_charge": "रिवर्स चार्ज पर देय कर",
        "yes": "हाँ",
        "no": "नहीं",
        "supplier": "आपूर्तिकर्ता",
        "recipient": "प्राप्तकर्ता",
        "gstin": "जीएसटीआईएन",
        "unregistered": "अपंजीकृत",
        "state": "राज्य",
        "code": "कोड",
        "sl": "क्र.",
        "description": "विवरण",
        "sac_hsn": "SAC/HSN",
        "qty": "मात्रा",
        "rate": "इकाई मूल्य",
        "taxable_value": "कर योग्य मूल्य",
        "cgst": "सीजीएसटी",
        "sgst": "एसजीएसटी",
        "igst": "आईजीएसटी",
        "amount": "राशि",
        "total_taxable": "कुल कर योग्य मूल्य",
        "round_off": "पूर्णांकन",
        "total": "कुल",
        "amount_in_words": "राशि शब्दों में",
        "for": "कृते",
        "signatory": "अधिकृत हस्ताक्षरकर्ता",
        "irn": "IRN",
        "ack": "पावती संख्या",
        "computer_generated": "यह कंप्यूटर द्वारा तैयार किया गया दस्तावेज़ है।",
        "financial_year": "वित्त वर्ष",
        "discount": "छूट",
        "value": "मूल्य",
        "value_before_discount": "छूट से पहले मूल्य",
        "reason": "कारण",
        "reason_downgrade": "योजना में बदलाव",
        "reason_cancellation": "रद्दीकरण",
        "reason_pause": "सदस्यता स्थगित",
        "reason_refund": "धनवापसी",
    },
    "mr": {
        "tax_invoice": "कर बीजक",
        "credit_note": "क्रेडिट नोट",
        "number": "बीजक क्रमांक",
        "credit_note_number": "क्रेडिट नोट क्रमांक",
        "date": "दिनांक",
        "due_date": "देय दिनांक",
        "original_invoice": "मूळ बीजक क्रमांक",
        "original_date": "मूळ बीजक दिनांक",
        "place_of_supply": "पुरवठ्याचे ठिकाण",
        "reverse_charge": "रिव्हर्स चार्जवर देय कर",
        "yes": "होय",
        "no": "नाही",
        "supplier": "पुरवठादार",
        "recipient": "प्राप्तकर्ता",
        "gstin": "जीएसटीआयएन",
        "unregistered": "नोंदणीकृत नाही",
        "state": "राज्य",
        "code": "कोड",
        "sl": "क्र.",
        "description": "तपशील",
        "sac_hsn": "SAC/HSN",
        "qty": "नग",
        "rate": "एकक किंमत",
        "taxable_value": "करपात्र मूल्य",
        "cgst": "सीजीएसटी",
        "sgst": "एसजीएसटी",
        "igst": "आयजीएसटी",
        "amount": "रक्कम",
        "total_taxable": "एकूण करपात्र मूल्य",
        "round_off": "पूर्णांक समायोजन",
        "total": "एकूण",
        "amount_in_words": "अक्षरी रक्कम",
        "for": "करिता",
        "signatory": "अधिकृत स्वाक्षरीकर्ता",
        "irn": "IRN",
        "ack": "पोच क्रमांक",
        "computer_generated": "हा संगणकाद्वारे तयार केलेला दस्तऐवज आहे.",
        "financial_year": "आर्थिक वर्ष",
        "discount": "सवलत",
        "value": "मूल्य",
        "value_before_discount": "सवलतीपूर्वीचे मूल्य",
        "reason": "कारण",
        "reason_downgrade": "योजना बदल",
        "reason_cancellation": "रद्द",
        "reason_pause": "सदस्यता स्थगित",
        "reason_refund": "परतावा",
    },
}


class UnsupportedLanguageError(ValueError):
    """The requested document language has no labels."""


def labels(lang: str) -> dict[str, str]:
    if lang not in LABELS:
        raise UnsupportedLanguageError(
            f"language {lang!r} is not supported; choose one of {', '.join(LANGUAGES)}"
        )
    return LABELS[lang]


# Babel re-parses locales and patterns on every call, which made formatting cost more than
# typesetting; locales and compiled patterns are cached here.
@lru_cache(maxsize=32)
def _locale(locale: str) -> Locale:
    return Locale.parse(locale)


@lru_cache(maxsize=32)
def _indian_grouping(locale: str) -> bool:
    return _locale(locale).decimal_formats[None].grouping == (3, 2)


@lru_cache(maxsize=64)
def _pattern(currency: str, locale: str, symbol: bool) -> str:
    group = "#,##,##0" if _indian_grouping(locale) else "#,##0"
    exp = exponent(currency)
    body = group + ("." + "0" * exp if exp else "")
    return f"¤{body}" if symbol else body


@lru_cache(maxsize=64)
def _compiled(pattern: str) -> NumberPattern:
    return parse_pattern(pattern)


def format_money(amount_minor: int, currency: str, locale: str) -> str:
    """Currency amount for totals (see `_format_money`)."""
    # Invoices repeat the same amounts (plan prices, their taxes) across lines and documents
    # and Babel costs ~20 us a call, so results are memoised; only exact ints are (True would
    # share 1's cache slot and skip Money's validation).
    if type(amount_minor) is int:
        return _format_money_cached(amount_minor, currency, locale)
    return _format_money(amount_minor, currency, locale)


def _format_money(amount_minor: int, currency: str, locale: str) -> str:
    """Currency amount for totals: `Money.format`, unless the locale's CLDR currency pattern
    drops the Indian grouping its numbers use (mr_IN does), then an explicit Indian pattern."""
    money = Money(amount_minor, currency)
    text = money.format(locale)
    if _indian_grouping(locale) and abs(amount_minor) >= 10 ** (5 + money.exponent):
        loc = _locale(locale)
        if loc.currency_formats["standard"].grouping != (3, 2):
            return format_currency(
                money.to_decimal(), currency, format=_pattern(currency, locale, True), locale=loc
            )
    return text


_format_money_cached = lru_cache(maxsize=1 << 16)(_format_money)


def format_amount(amount_minor: int, currency: str, locale: str) -> str:
    """Amount without a currency sign, with the locale's grouping (table cells)."""
    if type(amount_minor) is int:
        return _format_amount_cached(amount_minor, currency, locale)
    return _format_amount(amount_minor, currency, locale)


def _format_amount(amount_minor: int, currency: str, locale: str) -> str:
    value = Money(amount_minor, currency).to_decimal()
    return _compiled(_pattern(currency, locale, False)).apply(value, _locale(locale))


_format_amount_cached = lru_cache(maxsize=1 << 16)(_format_amount)


def currency_symbol(currency: str, locale: str) -> str:
    return get_currency_symbol(currency, locale=locale)


@lru_cache(maxsize=256)
def format_rate(rate: Fraction) -> str:
    """A percentage rate without trailing zeros: 9 -> '9%', 2.5 -> '2.5%'."""
    dec = Decimal(rate.numerator) / Decimal(rate.denominator)
    text = format(dec.normalize(), "f")
    return f"{text}%"


@lru_cache(maxsize=1024)
def format_quantity(qty: Fraction, locale: str) -> str:
    dec = Decimal(qty.numerator) / Decimal(qty.denominator)
    return format_decimal(dec.normalize(), locale=_locale(locale))


@lru_cache(maxsize=4096)
def format_day(day: date, locale: str) -> str:
    return format_date(day, "d MMM y", locale=_locale(locale))
