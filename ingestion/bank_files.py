"""Bank settlement files: parse a settlement recon CSV into exact rows, rejecting bad lines.

Columns (header names case-insensitive): settlement_id, utr, payment_id, gross, fee, tax, net,
settled_at, currency. Amounts are major units ("1234.50", parsed exactly with Decimal) unless the
header says `*_minor`. Files are streamed line by line (no size limit; a line is at most
`MAX_LINE_BYTES`). A bad line becomes a reject with its line number; every good line, the next
one included, still loads.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import BinaryIO

from billing_jobs.money import MoneyError, exponent, normalize_currency

IST = timezone(timedelta(hours=5, minutes=30), "IST")
MAX_LINE_BYTES = 64 * 1024  # a settlement line is a few hundred bytes; files have no size limit
MAX_FIELD_CHARS = 256

REQUIRED = ("settlement_id", "utr", "payment_id", "gross", "fee", "tax", "net", "settled_at")
AMOUNTS = ("gross", "fee", "tax", "net")
# Names seen in gateway recon exports, mapped to ours.
ALIASES = {
    "settlement_utr": "utr",
    "entity_id": "payment_id",
    "amount": "gross",
    "gross_amount": "gross",
    "fees": "fee",
    "fee_amount": "fee",
    "gst": "tax",
    "tax_amount": "tax",
    "net_amount": "net",
    "credit": "net",
    "settled_on": "settled_at",
    "settlement_date": "settled_at",
}
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-./]{0,63}$")
MAJOR_RE = re.compile(r"^\d{1,15}(\.\d+)?$")
MINOR_RE = re.compile(r"^\d{1,18}$")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class BankFileError(ValueError):
    """The file as a whole is unusable (not UTF-8, no header, missing columns, too large)."""


@dataclass(frozen=True)
class BankSettlementRow:
    """One settled payment credited by the bank, money in minor units."""

    line_number: int
    settlement_id: str
    utr: str
    payment_id: str
    gross_minor: int
    fee_minor: int
    tax_minor: int
    net_minor: int
    currency: str
    settled_at: datetime

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Reject:
    """A line that was not loaded, with why; `raw` is truncated and safe to display."""

    line_number: int
    reason: str
    raw: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class _LineError(ValueError):
    pass


def _open(source: str | Path | bytes) -> BinaryIO:
    if isinstance(source, bytes | bytearray):
        return io.BytesIO(bytes(source))
    return Path(source).open("rb")


def _physical_lines(stream: BinaryIO, max_line_bytes: int) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes without the line break) for each line, read in bounded pieces; a
    line longer than `max_line_bytes` comes as None (skipped to its end, never held whole)."""
    number = 0
    while True:
        piece = stream.readline(max_line_bytes + 1)
        if not piece:
            return
        number += 1
        if len(piece) > max_line_bytes and not piece.endswith(b"\n"):
            while piece and not piece.endswith(b"\n"):
                piece = stream.readline(max_line_bytes + 1)
            yield number, None
            continue
        yield number, piece.rstrip(b"\r\n")


def _cells(line: bytes) -> list[str]:
    """One physical line as CSV fields. A settlement field never spans lines (ids, amounts,
    dates), so a quote left open is this line's error and never swallows the next one."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _LineError(f"line is not UTF-8 (byte {exc.start + 1})") from None
    try:
        return next(csv.reader([text], strict=True))
    except csv.Error as exc:
        reason = "a quoted field is not closed on this line" if "end of data" in str(exc) else exc
        raise _LineError(f"unparseable CSV: {reason}") from None


def _header(raw: list[str]) -> tuple[dict[str, int], set[str]]:
    """Map our column names to positions; return also which amount columns are `*_minor`."""
    positions: dict[str, int] = {}
    minor: set[str] = set()
    for i, name in enumerate(raw):
        key = name.strip().strip('"').lower().replace(" ", "_")
        in_minor = key.endswith("_minor")
        if in_minor:
            key = key[: -len("_minor")]
        key = ALIASES.get(key, key)
        if in_minor:
            if key not in AMOUNTS:
                raise BankFileError(f"column {name!r}: only amounts can be in minor units")
            minor.add(key)
        if key in positions:
            raise BankFileError(f"column {name!r} appears twice in the header")
        positions[key] = i
    missing = [c for c in REQUIRED if c not in positions]
    if missing:
        raise BankFileError(f"header lacks required columns {missing}; got {raw!r}")
    return positions, minor


def _text(field: str, value: str) -> str:
    value = value.strip()
    if not value:
        raise _LineError(f"{field} is empty")
    if value.startswith(FORMULA_PREFIXES):
        raise _LineError(f"{field} starts with {value[0]!r}: refused as spreadsheet formula")
    if not ID_RE.match(value):
        raise _LineError(f"{field} {value[:40]!r} has characters outside [A-Za-z0-9_-./]")
    return value


def _amount(field: str, value: str, currency: str, minor_units: bool) -> int:
    value = value.strip()
    if not value:
        raise _LineError(f"{field} is empty")
    if minor_units:
        if not MINOR_RE.match(value):
            raise _LineError(f"{field} {value[:40]!r} is not a non-negative integer of minor units")
        return int(value)
    if not MAJOR_RE.match(value):
        raise _LineError(
            f"{field} {value[:40]!r} is not a non-negative decimal amount like 1234.50 "
            "(no signs, thousands separators or exponents)"
        )
    places = exponent(currency)
    try:
        scaled = Decimal(value).scaleb(places)
    except InvalidOperation as exc:
        raise _LineError(f"{field} {value[:40]!r} is not a number") from exc
    if scaled != scaled.to_integral_value():
        raise _LineError(f"{field} {value!r} has more than {places} decimals for {currency}")
    return int(scaled)


def _timestamp(value: str, default_tz: timezone) -> datetime:
    value = value.strip()
    if not value:
        raise _LineError("settled_at is empty")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _LineError(f"settled_at {value[:40]!r} is not an ISO-8601 date/time") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=default_tz)  # bank files state local (IST) times
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:  # e.g. 0001-01-01 IST is before year 1 in UTC
        raise _LineError(f"settled_at {value[:40]!r} is out of range") from exc


def _parse_line(
    cells: list[str],
    cols: dict[str, int],
    minor: set[str],
    line_number: int,
    default_currency: str | None,
    default_tz: timezone,
    check_net: bool = True,
) -> BankSettlementRow:
    if len(cells) != len(cols):
        raise _LineError(f"expected {len(cols)} fields, got {len(cells)}")
    for i, cell in enumerate(cells):
        if len(cell) > MAX_FIELD_CHARS:
            raise _LineError(f"field {i + 1} is longer than {MAX_FIELD_CHARS} characters")
        if "\x00" in cell:
            raise _LineError(f"field {i + 1} contains a NUL byte")

    def cell(name: str) -> str:
        return cells[cols[name]]

    raw_currency = cell("currency").strip() if "currency" in cols else ""
    if not raw_currency:
        if default_currency is None:
            raise _LineError("currency is empty")
        raw_currency = default_currency
    if raw_currency.startswith(FORMULA_PREFIXES):
        raise _LineError(f"currency starts with {raw_currency[0]!r}: refused as formula")
    try:
        currency = normalize_currency(raw_currency)
    except MoneyError as exc:
        raise _LineError(str(exc)) from exc
    amounts = {a: _amount(a, cell(a), currency, a in minor) for a in AMOUNTS}
    if check_net and amounts["gross"] - amounts["fee"] - amounts["tax"] != amounts["net"]:
        raise _LineError(
            f"net {amounts['net']} != gross {amounts['gross']} - fee {amounts['fee']} "
            f"- tax {amounts['tax']} (minor units)"
        )
    return BankSettlementRow(
        line_number=line_number,
        settlement_id=_text("settlement_id", cell("settlement_id")),
        utr=_text("utr", cell("utr")),
        payment_id=_text("payment_id", cell("payment_id")),
        gross_minor=amounts["gross"],
        fee_minor=amounts["fee"],
        tax_minor=amounts["tax"],
        net_minor=amounts["net"],
        currency=currency,
        settled_at=_timestamp(cell("settled_at"), default_tz),
    )


def iter_bank_settlement_csv(
    source: str | Path | bytes,
    *,
    default_currency: str | None = "INR",
    default_tz: timezone = IST,
    max_line_bytes: int = MAX_LINE_BYTES,
    keep_duplicates: bool = False,
    check_net: bool = True,
) -> Iterator[BankSettlementRow | Reject]:
    """Stream a settlement CSV (path or bytes): each line becomes a row or a `Reject`, in file
    order, holding only one line in memory (plus the keys seen, for duplicates).

    A line that cannot be read (not UTF-8, an unclosed quote, too long, wrong field count)
    rejects only itself. Raises `BankFileError` only for the file as a whole: no header, a
    header that is not UTF-8 or lacks columns. Duplicates of an already loaded
    (settlement_id, payment_id) are rejected and name the line they repeat; the first stays.
    With ``keep_duplicates`` an exact repeat is kept (a double credit is money that moved, for
    reconciliation to flag); a conflicting repeat (different amounts) is still rejected.
    Without ``check_net`` a line whose net is not gross - fee - tax is kept as written (a short
    payment, for reconciliation to flag). Out-of-order dates are fine.
    """
    seen: dict[tuple[str, str], BankSettlementRow] = {}
    cols: dict[str, int] | None = None
    minor: set[str] = set()
    with _open(source) as stream:
        for number, line in _physical_lines(stream, max_line_bytes):
            if cols is None and number == 1 and line is not None:
                line = line.removeprefix(b"\xef\xbb\xbf")  # the BOM Excel likes to add
            if line is None:
                if cols is None:
                    raise BankFileError(f"header line is longer than {max_line_bytes} bytes")
                yield Reject(number, f"line is longer than {max_line_bytes} bytes", "")
                continue
            if not line.strip():
                continue
            try:
                cells = _cells(line)
            except _LineError as exc:
                if cols is None:
                    raise BankFileError(f"header line unreadable: {exc}") from None
                yield Reject(number, str(exc), line[:200].decode("utf-8", "replace"))
                continue
            if all(not c.strip() for c in cells):
                continue
            if cols is None:
                cols, minor = _header(cells)
                continue
            raw = ",".join(cells)[:200]
            try:
                row = _parse_line(cells, cols, minor, number, default_currency, default_tz,
                                  check_net)  # fmt: skip
            except _LineError as exc:
                yield Reject(number, str(exc), raw)
                continue
            key = (row.settlement_id, row.payment_id)
            first = seen.get(key)
            if first is not None:
                same = (first.gross_minor, first.net_minor) == (row.gross_minor, row.net_minor)
                if not (same and keep_duplicates):
                    what = "duplicate of" if same else "conflicts with"
                    yield Reject(number, f"{what} line {first.line_number} for {key[0]}/{key[1]}",
                                 raw)  # fmt: skip
                    continue
            else:
                seen[key] = row
            yield row
    if cols is None:
        raise BankFileError("settlement file has no header line")


def parse_bank_settlement_csv(
    source: str | Path | bytes, **options: object
) -> tuple[list[BankSettlementRow], list[Reject]]:
    """`iter_bank_settlement_csv` collected: (rows, rejects) in file order."""
    rows: list[BankSettlementRow] = []
    rejects: list[Reject] = []
    for item in iter_bank_settlement_csv(source, **options):  # type: ignore[arg-type]
        (rejects if isinstance(item, Reject) else rows).append(item)  # type: ignore[arg-type]
    return rows, rejects
