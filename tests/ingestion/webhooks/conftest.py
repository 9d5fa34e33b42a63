"""Fixtures for the webhook receiver tests: a controllable clock, signers, live uvicorn."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from starlette.testclient import TestClient

from ingestion.webhooks import WebhookConfig, create_app
from ingestion.webhooks.app import uvicorn_config
from tests.ingestion.webhooks.webhook_helpers import SECRETS, FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_client(tmp_path: Path, clock: FakeClock) -> Iterator[Callable[..., TestClient]]:
    """Build TestClients (with lifespan) over one landing dir; closed at teardown."""
    opened: list[TestClient] = []

    def make(**overrides) -> TestClient:
        kwargs = {"landing_dir": tmp_path / "landing", "secrets": SECRETS, "clock": clock}
        kwargs.update(overrides)
        client = TestClient(create_app(WebhookConfig(**kwargs)))
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveServer:
    url: str
    landing: Path


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    """The real app under uvicorn on 127.0.0.1, in a thread, with the real clock."""
    landing = tmp_path / "live-landing"
    port = _free_port()
    # The production settings: uvloop, httptools with coalesced writes.
    config = uvicorn_config(
        create_app(WebhookConfig(landing_dir=landing, secrets=SECRETS)), "127.0.0.1", port
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    yield LiveServer(url=f"http://127.0.0.1:{port}", landing=landing)
    server.should_exit = True
    thread.join(timeout=10)
