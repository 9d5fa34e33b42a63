"""Parsing of command-line arguments: one function per kind of argument, each returning the
clean value or raising `typer.BadParameter` (exit code 2, the option named). Commands call
these on their raw option values, so a stricter validator for a kind (dates, bounds, names,
GSTIN, e-mail, control characters) plugs in here once and applies to every command."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import typer

_EMAIL = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,}$")


def parse_instant(value: str | None, option: str = "--at") -> datetime:
    """ISO 8601 with a UTC offset -> aware datetime (`billing_jobs.inputs.instant`, the one rule
    for instants: naive times are refused, the range is 2000..2100); None -> now."""
    from billing_jobs.inputs import InputError, instant

    if value is None:
        return datetime.now(UTC)
    try:
        return instant(value, option)
    except InputError as exc:
        raise typer.BadParameter(str(exc).removeprefix(f"{option}: "), param_hint=option) from None


def parse_text(value: str | None, option: str, *, max_length: int = 200) -> str | None:
    """Free text (names, address lines): `billing_jobs.inputs.text`, the one rule for text from
    outside (valid Unicode, no control characters or escapes, stripped, bounded length)."""
    from billing_jobs.inputs import InputError, text

    if value is None:
        return None
    try:
        return text(value, option, max_len=max_length, allow_empty=True)
    except InputError as exc:
        raise typer.BadParameter(str(exc).removeprefix(f"{option}: "), param_hint=option) from None


def parse_name(value: str | None, option: str = "--name") -> str | None:
    """A customer's (legal) name: non-empty text of at most 200 characters."""
    text = parse_text(value, option, max_length=200)
    if text is not None and not text:
        raise typer.BadParameter("must not be empty", param_hint=option)
    return text


def parse_email(value: str | None, option: str = "--email") -> str | None:
    if value is None:
        return None
    text = parse_text(value, option, max_length=254) or ""
    if not _EMAIL.match(text):
        raise typer.BadParameter(f"{value!r} is not an e-mail address", param_hint=option)
    return text


def parse_gstin(value: str | None, option: str = "--gstin") -> str | None:
    """A GSTIN (checksum and state code checked by the domain); "" removes one on update."""
    if value is None:
        return None
    text = (parse_text(value, option, max_length=15) or "").upper()
    if text and not re.fullmatch(r"[0-9A-Z]{15}", text):
        raise typer.BadParameter(f"{value!r} is not 15 letters and digits", param_hint=option)
    return text


def parse_state_code(value: str | None, option: str = "--state-code") -> str | None:
    if value is None:
        return None
    text = value.strip()
    if not re.fullmatch(r"[0-9]{2}", text):
        raise typer.BadParameter(
            f"{value!r} is not a two-digit GST state code (e.g. 29)", param_hint=option
        )
    return text


def parse_postal_code(value: str | None, option: str = "--postal-code") -> str | None:
    if value is None:
        return None
    text = value.strip()
    if not re.fullmatch(r"[A-Za-z0-9 -]{3,10}", text):
        raise typer.BadParameter(f"{value!r} is not a postal code", param_hint=option)
    return text


def parse_country(value: str | None, option: str = "--country") -> str | None:
    if value is None:
        return None
    text = value.strip().upper()
    if not re.fullmatch(r"[A-Z]{2}", text):
        raise typer.BadParameter(
            f"{value!r} is not a two-letter country code (ISO 3166, e.g. IN)", param_hint=option
        )
    return text


def parse_count(value: int, option: str = "--limit", *, most: int = 10_000) -> int:
    """A positive count of rows or items, at most `most`."""
    if value < 1 or value > most:
        raise typer.BadParameter(f"must be between 1 and {most}, got {value}", param_hint=option)
    return value


def parse_id(value: str, what: str = "id") -> int:
    """A ledger id given as a positive integer."""
    if not value.isdigit() or int(value) < 1:
        raise typer.BadParameter(f"{value!r} is not a {what} (a positive integer)")
    return int(value)
