"""The docs stay true to the code: every setting is in docs/configuration.md, and nothing in the
repository sends a reader to design notes that live outside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from orchestration.lib.env import Settings, _env_name

ROOT = Path(__file__).resolve().parents[1]
# The team's design notes live outside the repository; the name is assembled so that this
# file does not itself mention them.
NOTES = "DE" + "SIGN"
OUTSIDE_NOTES = re.compile(rf"shared/{NOTES}|{NOTES}\.md")


def test_every_setting_is_documented() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    missing = [_env_name(f) for f in Settings.model_fields if f"`{_env_name(f)}`" not in text]
    assert not missing, f"settings missing from docs/configuration.md: {missing}"


def _tracked_files() -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"not a git checkout: {exc}")
    return [ROOT / p for p in out.decode().split("\0") if p]


def test_nothing_refers_to_design_notes_outside_the_repository() -> None:
    me = Path(__file__).resolve()
    hits = []
    for path in _tracked_files():
        if path.resolve() == me or path.relative_to(ROOT).parts[0] == "docs" or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        hits += [
            f"{path.relative_to(ROOT)}:{n}"
            for n, line in enumerate(text.splitlines(), 1)
            if OUTSIDE_NOTES.search(line)
        ]
    assert not hits, f"references to design notes outside the repository: {hits}"


def test_the_reference_check_finds_a_reference() -> None:
    assert OUTSIDE_NOTES.search(f"See `../shared/{NOTES}.md` for the architecture.")
    assert OUTSIDE_NOTES.search(f"({NOTES}.md §4)")
    assert not OUTSIDE_NOTES.search("See docs/architecture.md.")
