"""Amounts in words with Indian numbering (thousand, lakh, crore) in English and Hindi."""

from __future__ import annotations

from billing_jobs.money import exponent, normalize_currency

_EN_ONES = [
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
_EN_TENS = ["_", "_", "Twenty", "Thirty", "Forty", "Fifty", "Sixty", "Seventy", "Eighty", "Ninety"]

# Hindi numbers 0-99 are irregular, so they are spelled out in full.
_HI_0_99 = [
    "शून्य",
    "एक",
    "दो",
    "तीन",
    "चार",
    "पाँच",
    "छह",
    "सात",
    "आठ",
    "नौ",
    "दस",
    "ग्यारह",
    "बारह",
    "तेरह",
    "चौदह",
    "पंद्रह",
    "सोलह",
    "सत्रह",
    "अठारह",
    "उन्नीस",
    "बीस",
    "इक्कीस",
    "बाईस",
    "तेईस",
    "चौबीस",
    "पच्चीस",
    "छब्बीस",
    "सत्ताईस",
    "अट्ठाईस",
    "उनतीस",
    "तीस",
    "इकतीस",
    "बत्तीस",
    "तैंतीस",
    "चौंतीस",
    "पैंतीस",
    "छत्तीस",
    "सैंतीस",
    "अड़तीस",
    "उनतालीस",
    "चालीस",
    "इकतालीस",
    "बयालीस",
    "तैंतालीस",
    "चवालीस",
    "पैंतालीस",
    "छियालीस",
    "सैंतालीस",
    "अड़तालीस",
    "उनचास",
    "पचास",
    "इक्यावन",
    "बावन",
    "तिरपन",
    "चौवन",
    "पचपन",
    "छप्पन",
    "सत्तावन",
    "अट्ठावन",
    "उनसठ",
    "साठ",
    "इकसठ",
    "बासठ",
    "तिरसठ",
    "चौंसठ",
    "पैंसठ",
    "छियासठ",
    "सड़सठ",
    "अड़सठ",
    "उनहत्तर",
    "सत्तर",
    "इकहत्तर",
    "बहत्तर",
    "तिहत्तर",
    "चौहत्तर",
    "पचहत्तर",
    "छिहत्तर",
    "सतहत्तर",
    "अठहत्तर",
    "उन्यासी",
    "अस्सी",
    "इक्यासी",
    "बयासी",
    "तिरासी",
    "चौरासी",
    "पचासी",
    "छियासी",
    "सत्तासी",
    "अट्ठासी",
    "नवासी",
    "नब्बे",
    "इक्यानवे",
    "बानवे",
    "तिरानवे",
    "चौरानवे",
    "पचानवे",
    "छियानवे",
    "सत्तानवे",
    "अट्ठानवे",
    "निन्यानवे",
]
assert len(_HI_0_99) == 100

_SCALES = {  # Indian scale words: (divisor, english, hindi)
    "crore": (10_000_000, "Crore", "करोड़"),
    "lakh": (100_000, "Lakh", "लाख"),
    "thousand": (1_000, "Thousand", "हज़ार"),
    "hundred": (100, "Hundred", "सौ"),
}


def _below_100(n: int, lang: str) -> str:
    if lang == "hi":
        return _HI_0_99[n]
    if n < 20:
        return _EN_ONES[n]
    tens, ones = divmod(n, 10)
    return _EN_TENS[tens] + (f"-{_EN_ONES[ones]}" if ones else "")


def integer_in_words(n: int, lang: str = "en") -> str:
    """Spell a non-negative integer with Indian grouping: 1,23,45,678 -> One Crore Twenty-Three
    Lakh Forty-Five Thousand Six Hundred Seventy-Eight. Beyond 99 crore the crore count is
    itself spelled recursively (One Hundred Crore)."""
    if lang not in ("en", "hi"):
        raise ValueError(f"amount in words supports 'en' and 'hi', not {lang!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"expected a non-negative integer, got {n!r}")
    if n < 100:
        return _below_100(n, lang)
    parts: list[str] = []
    rest = n
    for divisor, en, hi in _SCALES.values():
        count, rest = divmod(rest, divisor)
        if count:
            # Only the crore count can exceed 99, so recurse for it.
            head = integer_in_words(count, lang) if count >= 100 else _below_100(count, lang)
            parts.append(f"{head} {hi if lang == 'hi' else en}")
    if rest:
        parts.append(_below_100(rest, lang))
    return " ".join(parts)


def amount_in_words(amount_minor: int, currency: str = "INR", lang: str = "en") -> str:
    """Amount in words as printed on Indian invoices.

    INR 1234567890 (minor) -> "Rupees One Crore Twenty-Three Lakh Forty-Five Thousand Six Hundred
    Seventy-Eight and Ninety Paise Only"; Hindi: "एक करोड़ ... रुपये और नब्बे पैसे मात्र".
    Other currencies use their code and the minor part as a fraction ("USD Ten and 50/100 Only").
    """
    code = normalize_currency(currency)
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise ValueError(f"amount must be integer minor units, got {amount_minor!r}")
    negative = amount_minor < 0
    exp = exponent(code)
    major, minor = divmod(abs(amount_minor), 10**exp) if exp else (abs(amount_minor), 0)
    if lang == "hi":
        sign = "ऋण " if negative else ""
        if code == "INR":
            text = f"{integer_in_words(major, 'hi')} रुपये"
            if minor:
                text += f" और {integer_in_words(minor, 'hi')} पैसे"
            return f"{sign}{text} मात्र"
        text = f"{code} {integer_in_words(major, 'hi')}"
        return f"{sign}{text}{f' और {minor}/{10**exp}' if minor else ''} मात्र"
    sign = "Minus " if negative else ""
    if code == "INR":
        text = f"Rupees {integer_in_words(major)}"
        if minor:
            text += f" and {integer_in_words(minor)} Paise"
        return f"{sign}{text} Only"
    text = f"{code} {integer_in_words(major)}"
    return f"{sign}{text}{f' and {minor}/{10**exp}' if minor else ''} Only"
