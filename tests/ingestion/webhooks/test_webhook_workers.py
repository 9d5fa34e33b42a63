"""Several HTTP workers in front of one lander: exactly-once across workers, 503 without it."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from starlette.testclient import TestClient

from ingestion.webhooks import RateLimit, WebhookConfig, create_app
from ingestion.webhooks.journal import Journal, load_dedup_index
from ingestion.webhooks.lander import Lander, LanderClient, LanderServer, lander_address
from ingestion.webhooks.signatures import stripe_signature
from ingestion.webhooks.workers import per_worker
from tests.ingestion.webhooks.webhook_helpers import (
    SECRETS,
    journal_lines,
    stripe_event,
    stripe_headers,
)

STRIPE = "/webhooks/stripe"
# Generated per run: no secret of the repository ever configures a receiver.
E2E_SECRET = "whsec_" + secrets.token_hex(16)
LOG_SECRET = "whsec_" + secrets.token_hex(16)
ROOT = Path(__file__).resolve().parents[3]


class LanderThread:
    """A lander served from its own event loop in a thread, as the supervisor process runs it."""

    def __init__(self, landing: Path) -> None:
        self.landing = landing
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.journal = Journal(landing)

        async def start() -> LanderServer:
            server = LanderServer(
                Lander(self.journal, load_dedup_index(landing)), lander_address(landing)
            )
            await server.start()
            return server

        self.server = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(10)
        self.journal.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    return tmp_path / "landing"


@pytest.fixture
def worker(landing, clock) -> Iterator:
    opened: list[TestClient] = []

    def make() -> TestClient:
        config = WebhookConfig(landing_dir=landing, secrets=SECRETS, clock=clock)
        client = TestClient(create_app(config, lander_address(landing)))
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def test_two_workers_share_one_dedup_index_and_one_journal(landing, worker):
    lander = LanderThread(landing)
    try:
        first, second = worker(), worker()
        body = stripe_event("evt_w1")
        assert first.post(STRIPE, content=body, headers=stripe_headers(body)).json() == {
            "status": "accepted"
        }
        # The line is on disk when the worker answers 200.
        assert [x["event_id"] for x in journal_lines(landing)] == ["evt_w1"]
        assert second.post(STRIPE, content=body, headers=stripe_headers(body)).json() == {
            "status": "duplicate"
        }
        other = stripe_event("evt_w2")
        assert second.post(STRIPE, content=other, headers=stripe_headers(other)).status_code == 200
        assert second.get("/healthz").json() == {"status": "ok"}
    finally:
        lander.stop()
    assert sorted(x["event_id"] for x in journal_lines(landing)) == ["evt_w1", "evt_w2"]


def test_same_event_racing_through_two_connections_lands_once(landing):
    lander = LanderThread(landing)

    async def race() -> list[str]:
        clients = [LanderClient(lander_address(landing)) for _ in range(2)]
        line = b'{"event_id":"evt_race"}\n'
        try:
            return await asyncio.gather(
                *(c.land("stripe", "evt_race", "2026-09-21", line) for c in clients * 5)
            )
        finally:
            for c in clients:
                await c.close()

    try:
        statuses = asyncio.run(race())
    finally:
        lander.stop()
    assert sorted(statuses) == ["accepted"] + ["duplicate"] * 9
    files = list((landing / "webhooks" / "stripe" / "2026-09-21").glob("*.jsonl"))
    assert b"".join(f.read_bytes() for f in files) == b'{"event_id":"evt_race"}\n'


def test_worker_answers_503_without_a_lander_then_recovers_after_restart(landing, worker):
    client = worker()
    body = stripe_event("evt_nolander")
    resp = client.post(STRIPE, content=body, headers=stripe_headers(body))
    assert resp.status_code == 503  # never a 2xx without the lander's durable write
    assert client.get("/healthz").status_code == 503
    assert journal_lines(landing) == []
    lander = LanderThread(landing)
    try:
        assert client.post(STRIPE, content=body, headers=stripe_headers(body)).json() == {
            "status": "accepted"
        }
    finally:
        lander.stop()
    # A new lander rebuilds the index from the journal: the retry is a duplicate, not a 2nd line.
    lander = LanderThread(landing)
    try:
        statuses = [
            client.post(STRIPE, content=body, headers=stripe_headers(body)).status_code
            for _ in range(2)
        ]
        # The first try may still use the connection to the stopped lander (503, retried).
        assert statuses[-1] == 200
        resp = client.post(STRIPE, content=body, headers=stripe_headers(body))
        assert resp.json() == {"status": "duplicate"}
    finally:
        lander.stop()
    assert [x["event_id"] for x in journal_lines(landing)] == ["evt_nolander"]


def test_rate_limits_are_shared_out_between_workers(landing):
    config = WebhookConfig(
        landing_dir=landing, secrets=SECRETS, rate_limits={"stripe": RateLimit(100, 10)}
    )
    assert per_worker(config, 4).rate_limits == {"stripe": RateLimit(25, 2)}
    assert per_worker(config, 20).rate_limits["stripe"].burst == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_with_two_workers_end_to_end_and_sigkill_takes_workers_down(tmp_path):
    port, landing = _free_port(), tmp_path / "landing"
    env = {**os.environ, "STRIPE_WEBHOOK_SECRET": E2E_SECRET, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "ingestion.webhooks", "--landing", str(landing)]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port), "--workers", "2"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "receiver with workers did not start"
            time.sleep(0.2)
        workers = psutil.Process(proc.pid).children(recursive=True)
        assert sum("spawn_main" in " ".join(w.cmdline()) for w in workers) == 2
        statuses = []
        for event_id in ["evt_e1", "evt_e2", "evt_e1", "evt_e3", "evt_e2"] * 2:
            body = json.dumps({"id": event_id, "type": "charge.succeeded"}).encode()
            t = int(time.time())
            sig = {"Stripe-Signature": f"t={t},v1={stripe_signature(E2E_SECRET, t, body)}"}
            # A new connection each time, so the kernel spreads them over both workers.
            resp = httpx.post(f"http://127.0.0.1:{port}{STRIPE}", content=body, headers=sig)
            statuses.append(resp.json()["status"])
        assert statuses.count("accepted") == 3 and statuses.count("duplicate") == 7
        assert sorted(x["event_id"] for x in journal_lines(landing)) == [
            "evt_e1",
            "evt_e2",
            "evt_e3",
        ]
        time.sleep(1.5)  # request logs are written twice a second
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        _, alive = psutil.wait_procs(workers, timeout=10)
        assert alive == [], "workers outlived their supervisor"
        logs = [
            json.loads(x) for x in proc.stderr.read().decode().splitlines() if x.startswith("{")
        ]
        assert sorted(x["status"] for x in logs if x.get("msg") == "webhook") == sorted(statuses)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_serve_single_process_writes_json_request_logs(tmp_path):
    port = _free_port()
    env = {**os.environ, "STRIPE_WEBHOOK_SECRET": LOG_SECRET, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "ingestion.webhooks", "--landing", str(tmp_path / "landing")]
    proc = subprocess.Popen(
        [*cmd, "--port", str(port)], env=env, cwd=tmp_path, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "receiver exited"
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "receiver did not start"
                time.sleep(0.2)
        body = json.dumps({"id": "evt_log1", "type": "charge.succeeded"}).encode()
        t = int(time.time())
        sig = {"Stripe-Signature": f"t={t},v1={stripe_signature(LOG_SECRET, t, body)}"}
        assert httpx.post(f"http://127.0.0.1:{port}{STRIPE}", content=body, headers=sig).json() == {
            "status": "accepted"
        }
        bad = {"Stripe-Signature": f"t={t},v1={'0' * 64}"}
        assert httpx.post(f"http://127.0.0.1:{port}{STRIPE}", content=body, headers=bad).is_error
    finally:
        proc.terminate()  # a clean stop flushes the buffered log lines
        proc.wait(20)
    lines = [json.loads(x) for x in proc.stderr.read().decode().splitlines() if x.startswith("{")]
    hooks = [x for x in lines if x.get("msg") == "webhook"]
    assert [(x["event_id"], x["http_status"]) for x in hooks] == [("evt_log1", 200), ("", 400)]
    assert LOG_SECRET not in json.dumps(lines)


def test_lander_refuses_frames_whose_ids_would_become_odd_paths(landing):
    from ingestion.webhooks.journal import LandingZoneError

    lander = LanderThread(landing)

    async def send(event_id: str, day: str) -> str:
        client = LanderClient(lander_address(landing))
        try:
            return await client.land("stripe", event_id, day, b'{"x":1}\n')
        finally:
            await client.close()

    try:
        for event_id, day in (("../../etc", "2026-09-21"), ("evt_ok", "../../tmp")):
            with pytest.raises(LandingZoneError):
                asyncio.run(send(event_id, day))
        assert asyncio.run(send("evt_ok", "2026-09-21")) == "accepted"
    finally:
        lander.stop()
    assert [p.name for p in (landing / "webhooks" / "stripe").iterdir()] == ["2026-09-21"]


def test_the_app_does_not_import_its_workers_or_server():
    """No import circle: `workers` and `server` build on `app`, never the other way round."""
    import ast

    tree = ast.parse((ROOT / "ingestion" / "webhooks" / "app.py").read_text())
    imported = {
        n.module if isinstance(n, ast.ImportFrom) else a.name
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in n.names
    }
    assert not {"ingestion.webhooks.workers", "ingestion.webhooks.server"} & imported
