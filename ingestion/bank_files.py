"""Bank settlement files: parse a settlement recon CSV into exact rows, rejecting bad lines.

Columns (header names case-insensitive): settlement_id, utr, payment_id, gross, fee, tax, net,
settled_at, currency. Amounts are major units ("1234.50", parsed exactly with Decimal) unless the
header says `*_minor`. A bad line becomes a reject with its line number; good lines still load.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path

from billing_jobs.money import MoneyError, exponent, normalize_currency

IST = timezone(timedelta(hours=5, minutes=30), "IST")
MAX_FILE_BYTES = 64 * 1024 * 1024
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


def _read_text(source: str | Path | bytes, max_bytes: int) -> str:
    if isinstance(source, bytes | bytearray):
        data = bytes(source)
    else:
        path = Path(source)
        if path.stat().st_size > max_bytes:
            raise BankFileError(f"{path}: larger than {max_bytes} bytes")
        data = path.read_bytes()
    if len(data) > max_bytes:
        raise BankFileError(f"settlement file larger than {max_bytes} bytes")
    try:
        return data.decode("utf-8-sig")  # strips a BOM that Excel likes to add
    except UnicodeDecodeError as exc:
        raise BankFileError(f"settlement file is not UTF-8 (byte {exc.start})") from exc


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


def parse_bank_settlement_csv(
    source: str | Path | bytes,
    *,
    default_currency: str | None = "INR",
    default_tz: timezone = IST,
    max_bytes: int = MAX_FILE_BYTES,
    keep_duplicates: bool = False,
    check_net: bool = True,
) -> tuple[list[BankSettlementRow], list[Reject]]:
    """Parse a settlement CSV (path or bytes); return (rows, rejects) in file order.

    Duplicates of an already loaded (settlement_id, payment_id) are rejected and name the line
    they repeat; the first occurrence stays loaded. With ``keep_duplicates`` an exact repeat is
    kept (a double credit is money that moved, for reconciliation to flag); a conflicting
    repeat (different amounts) is still rejected. Without ``check_net`` a line whose net is not
    gross - fee - tax is kept as written (a short payment, for reconciliation to flag).
    Out-of-order dates are fine.
    """
    reader = csv.reader(io.StringIO(_read_text(source, max_bytes), newline=""))
    rows: list[BankSettlementRow] = []
    rejects: list[Reject] = []
    seen: dict[tuple[str, str], BankSettlementRow] = {}
    cols: dict[str, int] | None = None
    minor: set[str] = set()
    previous_end = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            start = previous_end + 1
            previous_end = reader.line_num
            if cols is None:
                raise BankFileError(f"header line unreadable: {exc}") from exc
            rejects.append(Reject(start, f"unparseable CSV: {exc}", ""))
            continue
        start, previous_end = previous_end + 1, reader.line_num
        if not cells or all(not c.strip() for c in cells):
            continue
        if cols is None:
            cols, minor = _header(cells)
            continue
        raw = ",".join(cells)[:200]
        try:
            row = _parse_line(cells, cols, minor, start, default_currency, default_tz, check_net)
        except _LineError as exc:
            rejects.append(Reject(start, str(exc), raw))
            continue
        key = (row.settlement_id, row.payment_id)
        first = seen.get(key)
        if first is not None:
            same = (first.gross_minor, first.net_minor) == (row.gross_minor, row.net_minor)
            what = "duplicate of" if same else "conflicts with"
            if same and keep_duplicates:
                rows.append(row)
                continue
            rejects.append(
                Reject(start, f"{what} line {first.line_number} for {key[0]}/{key[1]}", raw)
            )
            continue
        seen[key] = row
        rows.append(row)
    if cols is None:
        raise BankFileError("settlement file has no header line")
    return rows, rejects
