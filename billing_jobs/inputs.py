"""Validators for input from outside (CLI options, API arguments, config values): instants,
integers, text, names, e-mail addresses and GSTINs. Each returns the clean value or raises
`InputError` naming the field and what was wrong; commands turn that into exit code 2.

One rule for instants, used everywhere (CLI `--at`/`--as-of`, job configs, checks): ISO 8601
with a UTC offset (`Z` or `+05:30`); a naive time is refused, never guessed, because the same
wall-clock time means different instants in UTC and in the billing time zone.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime

from billing_jobs.errors import ValidationError
from billing_jobs.ledger import schema as s
from billing_jobs.tax.gst import validate_gstin, validate_state_code

# Far enough for any billing history or schedule, near enough that period arithmetic
# (a year ahead, a 60-day retry window) never leaves what datetime can hold.
MIN_INSTANT = datetime(2000, 1, 1, tzinfo=UTC)
MAX_INSTANT = datetime(2100, 1, 1, tzinfo=UTC)
MAX_ID = 2**63 - 1  # BIGINT, the ledger's id type
MAX_QUANTITY = 1_000_000  # seats or units on one subscription item: amounts stay in BIGINT
MAX_TRIAL_DAYS = 730
NAME_MAX = s.customers.c.name.type.length  # the schema's limit (200)
EMAIL_MAX = s.customers.c.email.type.length  # 254, as RFC 5321 allows
_EMAIL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)


# Bidirectional overrides and isolates reorder what a reader sees ("trojan source"); joiners
# (U+200C/D) stay allowed: Devanagari and other Indic names need them.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class InputError(ValidationError):
    """A value from outside was refused; the message names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def instant(value: str | datetime, field: str = "--at") -> datetime:
    """An aware instant from ISO 8601 text (or a datetime), within 2000..2100."""
    if isinstance(value, datetime):
        parsed = value
    else:
        raw = text(value, field, max_len=64)
        try:
            parsed = datetime.fromisoformat(raw.replace("z", "Z"))
        except ValueError:
            raise InputError(
                field, f"{raw!r} is not an ISO 8601 instant, e.g. 2025-05-01T00:00:00+05:30"
            ) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise InputError(
            field,
            f"{parsed.isoformat()!r} has no UTC offset; add one, e.g. "
            f"{parsed.isoformat()}+05:30 (IST) or {parsed.isoformat()}Z (UTC)",
        )
    if not MIN_INSTANT <= parsed < MAX_INSTANT:
        raise InputError(
            field, f"{parsed.isoformat()} is outside {MIN_INSTANT.date()}..{MAX_INSTANT.date()}"
        )
    return parsed


def day(value: str, field: str) -> date:
    """A calendar date (YYYY-MM-DD) within the same range as instants."""
    raw = text(value, field, max_len=10)
    try:
        parsed = date.fromisoformat(raw)
    except ValueError:
        raise InputError(field, f"{raw!r} is not a date like 2025-01-01") from None
    if not MIN_INSTANT.date() <= parsed < MAX_INSTANT.date():
        raise InputError(field, f"{parsed} is outside {MIN_INSTANT.date()}..{MAX_INSTANT.date()}")
    return parsed


def integer(value: int | str, field: str, *, lo: int = 0, hi: int = MAX_ID) -> int:
    """An integer in [lo, hi] (bool refused)."""
    if isinstance(value, bool):
        raise InputError(field, "must be an integer, not a boolean")
    if isinstance(value, str):
        raw = text(value, field, max_len=32)
        if not re.fullmatch(r"[+-]?\d+", raw):
            raise InputError(field, f"{raw!r} is not an integer")
        value = int(raw)
    if not isinstance(value, int):
        raise InputError(field, f"must be an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise InputError(field, f"{value} is outside {lo}..{hi}")
    return value


def ledger_ref(ref: str | int) -> int | None:
    """The ledger id `ref` names when it is one (ASCII digits, 1..MAX_ID), else None: then it
    is a document number (INV/2627/000001) or a gateway id, looked up as text."""
    if isinstance(ref, bool):
        return None
    if isinstance(ref, int):
        return ref if 1 <= ref <= MAX_ID else None
    raw = str(ref)
    if raw.isascii() and raw.isdigit() and len(raw) <= 19 and 1 <= int(raw) <= MAX_ID:
        return int(raw)
    return None


def text(value: str, field: str, *, max_len: int, allow_empty: bool = False) -> str:
    """Printable text: valid Unicode (undecodable bytes from a terminal are refused), no
    control characters or escape sequences (ANSI colours, cursor moves, NUL), surrounding
    spaces stripped, at most `max_len` characters."""
    if not isinstance(value, str):
        raise InputError(field, f"must be text, got {type(value).__name__}")
    if any("\ud800" <= ch <= "\udfff" for ch in value):
        raise InputError(field, "is not valid UTF-8")
    bad = next((ch for ch in value if unicodedata.category(ch) == "Cc" or ch in _BIDI), None)
    if bad is not None:
        raise InputError(
            field, f"contains the control character U+{ord(bad):04X}; remove it and retry"
        )
    cleaned = value.strip()
    if not cleaned and not allow_empty:
        raise InputError(field, "must not be empty")
    if len(cleaned) > max_len:
        raise InputError(field, f"is {len(cleaned)} characters long; at most {max_len} allowed")
    return cleaned


def name(value: str, field: str = "name") -> str:
    """A customer (legal) name, as long as the ledger can store."""
    return text(value, field, max_len=NAME_MAX)


def email(value: str, field: str = "email") -> str:
    """An e-mail address of the plain `local@domain.tld` form (no display names, comments,
    quoted parts or markup: those are how addresses smuggle content into mails)."""
    raw = text(value, field, max_len=EMAIL_MAX)
    local = raw.split("@", 1)[0]
    if not _EMAIL.fullmatch(raw) or len(local) > 64:
        raise InputError(field, f"{raw!r} is not an e-mail address like billing@example.com")
    return raw


def gstin(value: str, state_code: str, field: str = "gstin") -> str:
    """A GSTIN with a valid checksum, registered in `state_code` (its first two digits): a
    GSTIN of another state would put the wrong tax (CGST+SGST vs IGST) on every invoice."""
    raw = text(value, field, max_len=15)
    normalized = validate_gstin(raw)
    state = validate_state_code(state_code)
    if normalized[:2] != state:
        raise InputError(
            field,
            f"GSTIN {normalized} is registered in state {normalized[:2]}, but the state code "
            f"given is {state}",
        )
    return normalized
