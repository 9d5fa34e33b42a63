"""Turn ledger rows into JSON-serializable dicts (ISO timestamps, ints, strings)."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def row_dict(row: Any) -> dict[str, Any]:
    out = {}
    for key, value in row._mapping.items():
        out[key] = value.isoformat() if isinstance(value, datetime) else value
    return out
