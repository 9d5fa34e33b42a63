"""`paysight scan-pii`: look through every store, log and landing file of the installation for
what must never be kept — a card number (Luhn-valid, with a card network's prefix and length),
a CVV or UPI PIN next to its name, or a gateway API key — and report where, never what.

Every file is read as bytes in overlapping chunks, so a match across a chunk border is found
(SQLite keeps text cells as plain bytes). DuckDB databases and Parquet files are also read
through DuckDB, every text column decoded: their compression (FSST, zstd, snappy) hides text
from a byte scan. A DuckDB file another process is writing cannot be opened and is reported
as unreadable, which fails the scan like a finding: nothing unread is vouched for.
`data/secrets/` is skipped: it holds the installation's own webhook secrets by design. Those
secrets, and every secret setting (API keys, webhook secrets, the SMTP password), are looked
for everywhere else: a log or a store that holds one is a finding (`own_secret`)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from orchestration.lib.env import Settings

CHUNK = 1 << 20
OVERLAP = 64
SKIPPED_DIRS = ("secrets",)

# 13-19 digits standing alone, either contiguous or grouped as printed on cards (4-4-4-4...,
# Amex 4-6-5) with one space or dash: digits inside an identifier (pi_cb2349bce4404091436774c6)
# or timestamps run together in a database file are not a card number.
_DIGITS = re.compile(
    rb"(?<![0-9A-Za-z_.:-])(?:[0-9]{13,19}|[0-9]{4}([ -])[0-9]{4}\1[0-9]{4}\1[0-9]{1,7}"
    rb"|[0-9]{4}([ -])[0-9]{6}\2[0-9]{5})(?![0-9A-Za-z_:-])"
)
_SECRET_FIELD = re.compile(
    rb"(?i)[\"']?(?:cvv|cvc|cvv2|card_?security_?code|upi_?pin|mpin)[\"']?\s*[:=]\s*[\"']?"
    rb"([0-9]{3,6})(?![0-9])"
)
_API_KEY = re.compile(rb"(?<![A-Za-z0-9_])(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"
                      rb"|rzp_(?:live|test)_[A-Za-z0-9]{14,}")  # fmt: skip


@dataclass(frozen=True)
class Finding:
    """Where something was found; `kind` is card_number, cvv_or_pin or api_key. The value
    itself is never reported (only its last four characters for a card number)."""

    path: str
    offset: int
    kind: str
    hint: str


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_network(digits: str) -> str | None:
    """The card network a number's prefix and length belong to, or None."""
    n, p2, p4 = len(digits), int(digits[:2]), int(digits[:4])
    if digits[0] == "4" and n in (13, 16, 19):
        return "visa"
    if (51 <= p2 <= 55 or 2221 <= p4 <= 2720) and n == 16:
        return "mastercard"
    if p2 in (34, 37) and n == 15:
        return "amex"
    if (p2 in (60, 65, 81, 82) or digits[:3] == "508") and n == 16:
        return "rupay_or_discover"
    if (p2 in (36, 38) and n == 14) or (p2 == 35 and n == 16):
        return "diners_or_jcb"
    return None


def scan_bytes(
    data: bytes, path: str, base: int = 0, secrets: Iterable[bytes] = ()
) -> Iterator[Finding]:
    for m in _DIGITS.finditer(data):
        digits = re.sub(rb"[ -]", b"", m.group()).decode()
        if card_network(digits) and luhn_ok(digits):
            yield Finding(path, base + m.start(), "card_number", f"ending {digits[-4:]}")
    for m in _SECRET_FIELD.finditer(data):
        yield Finding(
            path,
            base + m.start(),
            "cvv_or_pin",
            m.group().split(b":")[0][:20].decode("ascii", "replace"),
        )
    for m in _API_KEY.finditer(data):
        yield Finding(path, base + m.start(), "api_key", m.group()[:8].decode())
    for secret in secrets:
        at = data.find(secret)
        while at >= 0:
            yield Finding(path, base + at, "own_secret", f"{len(secret)} characters")
            at = data.find(secret, at + 1)


def scan_file(path: Path, secrets: Iterable[bytes] = ()) -> list[Finding]:
    secrets = list(secrets)
    overlap = max([OVERLAP, *(len(x) for x in secrets)])
    found: dict[tuple[int, str], Finding] = {}
    with path.open("rb") as fh:
        base, tail = 0, b""
        while block := fh.read(CHUNK):
            data = tail + block
            start = base - len(tail)
            for f in scan_bytes(data, str(path), start, secrets):
                found.setdefault((f.offset, f.kind), f)
            tail = data[-overlap:]
            base += len(block)
    return sorted(found.values(), key=lambda f: (f.offset, f.kind))


_TEXT_TYPES = ("VARCHAR", "JSON")
_ROWS = 4096


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _decoded_columns(
    con: Any, path: Path, relations: list[tuple[str, str, str]], secrets: list[bytes]
) -> list[Finding]:
    """Scan each (relation sql, label, column) text column value by value; the offset of a
    finding is its row number within that column."""
    found: list[Finding] = []
    for relation, label, column in relations:
        quoted = _quote(column)
        cursor = con.execute(f"select {quoted} from {relation} where {quoted} is not null")
        row = 0
        while rows := cursor.fetchmany(_ROWS):
            for (value,) in rows:
                for f in scan_bytes(str(value).encode(), f"{path}::{label}.{column}", row, secrets):
                    found.append(Finding(f.path, row, f.kind, f.hint))
                row += 1
    return found


def scan_decoded(path: Path, secrets: Iterable[bytes] = ()) -> list[Finding]:
    """Text columns of a DuckDB database or a Parquet file, decoded (see the module doc).
    Raises duckdb.Error when the file cannot be opened."""
    from ingestion.warehouse import connect

    secrets = list(secrets)
    if path.suffix == ".parquet":
        con = connect()
        try:
            relation = f"read_parquet('{str(path).replace(chr(39), chr(39) * 2)}')"
            cols = con.execute(f"describe select * from {relation}").fetchall()
            text = [(relation, path.name, c[0]) for c in cols if str(c[1]) in _TEXT_TYPES]
            return _decoded_columns(con, path, text, secrets)
        finally:
            con.close()
    con = connect(path, read_only=True)
    try:
        cols = con.execute(
            "select table_schema, table_name, column_name from information_schema.columns "
            "where list_contains(?, data_type) order by 1, 2, ordinal_position",
            [list(_TEXT_TYPES)],
        ).fetchall()
        text = [(f"{_quote(sch)}.{_quote(tab)}", f"{sch}.{tab}", col) for sch, tab, col in cols]
        return _decoded_columns(con, path, text, secrets)
    finally:
        con.close()


def _decodable(path: Path) -> bool:
    """A Parquet file or a DuckDB database (by its header magic)."""
    if path.suffix == ".parquet":
        return True
    try:
        with path.open("rb") as fh:
            return fh.read(12)[8:12] == b"DUCK"
    except OSError:
        return False


MIN_SECRET = 8


def own_secrets(settings: Settings) -> list[bytes]:
    """The installation's own secrets: every file in `data/secrets/` and every secret setting
    (API keys, webhook secrets, the SMTP password). None may appear anywhere else."""
    from urllib.parse import urlsplit

    values: list[str] = []
    folder = Path(settings.data_dir) / "secrets"
    if folder.is_dir():
        values += [p.read_text(errors="replace").strip() for p in folder.rglob("*") if p.is_file()]
    for name, value in settings:
        if hasattr(value, "get_secret_value"):
            secret = value.get_secret_value()
            values.append((urlsplit(secret).password or "") if name == "smtp_url" else secret)
    return sorted({v.encode() for v in values if len(v) >= MIN_SECRET})


def roots(settings: Settings, extra: Iterable[Path] = ()) -> list[Path]:
    """Every local store, log and landing folder of the installation."""
    out = [Path(settings.data_dir), Path(str(settings.warehouse_path))]
    for url in (settings.landing_url, settings.documents_url):
        if url and "://" not in url:
            out.append(Path(url))
    if settings.ledger_url and settings.ledger_url.startswith("sqlite:///"):
        out.append(Path(settings.ledger_url.removeprefix("sqlite:///")))
    if "://" not in str(settings.mlflow_artifacts_dir):
        out.append(Path(str(settings.mlflow_artifacts_dir)))
    out += list(extra)
    return out


def _files(paths: Iterable[Path], skip: set[Path]) -> Iterator[Path]:
    seen: set[Path] = set()
    for root in paths:
        candidates = [root] if root.is_file() else sorted(root.rglob("*")) if root.is_dir() else []
        for p in candidates:
            rp = p.resolve()
            if rp in seen or not p.is_file() or any(rp.is_relative_to(s) for s in skip):
                continue
            seen.add(rp)
            yield p


def scan(settings: Settings, extra: Iterable[Path] = ()) -> dict[str, Any]:
    """Scan the installation (and `extra` folders, e.g. a log directory)."""
    skip = {(Path(settings.data_dir) / d).resolve() for d in SKIPPED_DIRS}
    import duckdb

    secrets = own_secrets(settings)
    findings: list[Finding] = []
    unreadable: list[dict[str, str]] = []
    files = 0
    for path in _files(roots(settings, extra), skip):
        files += 1
        findings += scan_file(path, secrets)
        if _decodable(path):
            try:
                findings += scan_decoded(path, secrets)
            except duckdb.Error as exc:
                reason = str(exc).splitlines()[0][:200]
                unreadable.append({"path": str(path), "reason": reason})
    return {
        "files_scanned": files,
        "findings": [asdict(f) for f in findings],
        "unreadable": unreadable,
    }
