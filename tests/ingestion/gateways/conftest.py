"""Fixtures for adapter tests: a localstripe server on 127.0.0.1 in a subprocess."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# localstripe's own `start()` binds '::' (all interfaces) and pickles its store to /tmp on every
# write; this launcher binds loopback only and keeps the store in memory so runs stay isolated.
_LAUNCHER = """
import sys
from aiohttp import web
from localstripe import resources
from localstripe.server import app
resources.Store.dump_to_disk = lambda self: None
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not listen on 127.0.0.1:{port} within {timeout}s")


@pytest.fixture(scope="module")
def localstripe_url() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", _LAUNCHER, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def reference_dir() -> Path:
    """`../shared/reference` next to the repo root; from a git worktree, next to the main checkout."""
    here = Path(__file__).resolve()
    root = next(p for p in here.parents if (p / "pyproject.toml").exists())
    candidate = root.parent / "shared" / "reference"
    git = root / ".git"
    if not candidate.is_dir() and git.is_file():
        # A worktree's .git file points at <main>/.git/worktrees/<name>.
        gitdir = Path(git.read_text().split("gitdir:", 1)[1].strip())
        main_root = gitdir.parent.parent.parent
        candidate = main_root.parent / "shared" / "reference"
    return candidate


@pytest.fixture(scope="session")
def razorpay_reference() -> Path:
    ref = reference_dir() / "razorpay"
    if not ref.is_dir():
        pytest.skip(f"Razorpay reference data not found at {ref}")
    return ref
