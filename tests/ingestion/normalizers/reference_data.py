"""Locate and load the shared gateway reference data (never copied into the repo)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest


def repo_root() -> Path:
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").exists():
            return parent
    raise RuntimeError("repository root not found")


# `../shared/reference` next to the checkout; PAYSIGHT_REFERENCE_DIR points elsewhere (worktrees).
REFERENCE = Path(
    os.environ.get("PAYSIGHT_REFERENCE_DIR") or repo_root().parent / "shared" / "reference"
)


def reference_dir(name: str) -> Path:
    path = REFERENCE / name
    if not path.is_dir():
        pytest.skip(f"reference data not found at {path}")
    return path


def load_lenient(path: Path) -> object | None:
    """Some upstream mock files carry trailing commas; unparseable ones return None."""
    text = path.read_text()
    try:
        return json.loads(text)
    except ValueError:
        try:
            return json.loads(re.sub(r",\s*([}\]])", r"\1", text))
        except ValueError:
            return None


def razorpay_entities() -> list[tuple[str, dict]]:
    """Every Razorpay entity in the reference mocks, collections expanded."""
    found = []
    for path in sorted(reference_dir("razorpay").glob("*.json")):
        data = load_lenient(path)
        if not isinstance(data, dict):
            continue
        items = data.get("items") if data.get("entity") == "collection" else [data]
        for item in items or []:
            if isinstance(item, dict) and isinstance(item.get("entity"), str):
                found.append((path.name, item))
    return found


def stripe_resources() -> dict[str, dict]:
    path = reference_dir("stripe") / "fixtures3.json"
    return json.loads(path.read_text())["resources"]
