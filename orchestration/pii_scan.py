"""`paysight scan-pii`: look through every store, log and landing file of the installation for
what must never be kept — a card number (Luhn-valid, with a card network's prefix and length),
a CVV or UPI PIN next to its name, or a gateway API key — and report where, never what.

Files are read as bytes (SQLite, DuckDB and Parquet files included: their text cells are
stored as plain bytes), in overlapping chunks so a match across a chunk border is found.
`data/secrets/` is skipped: it holds the installation's own webhook secrets by design."""

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


def scan_bytes(data: bytes, path: str, base: int = 0) -> Iterator[Finding]:
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


def scan_file(path: Path) -> list[Finding]:
    found: dict[tuple[int, str], Finding] = {}
    with path.open("rb") as fh:
        base, tail = 0, b""
        while block := fh.read(CHUNK):
            data = tail + block
            start = base - len(tail)
            for f in scan_bytes(data, str(path), start):
                found.setdefault((f.offset, f.kind), f)
            tail = data[-OVERLAP:]
            base += len(block)
    return sorted(found.values(), key=lambda f: (f.offset, f.kind))


def roots(settings: Settings, extra: Iterable[Path] = ()) -> list[Path]:
    """Every local store, log and landing folder of the installation."""
    out = [Path(settings.data_dir), Path(str(settings.warehouse_path))]
    for url in (settings.landing_url, settings.documents_url):
        if url and "://" not in url:
            out.append(Path(url))
    if settings.ledger_url and settings.ledger_url.startswith("sqlite:///"):
        out.append(Path(settings.ledger_url.removeprefix("sqlite:///")))
    out += [Path(str(settings.mlflow_artifacts_dir)), *extra]
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
    findings: list[Finding] = []
    files = 0
    for path in _files(roots(settings, extra), skip):
        files += 1
        findings += scan_file(path)
    return {"files_scanned": files, "findings": [asdict(f) for f in findings]}
