"""The receiver under hostile clients, as a real process on 127.0.0.1: idle, half-open and slow
connections are dropped or evicted so a real sender is still acknowledged; junk never spends the
rate limit of signed events; a validly signed body nested too deep is a 400, not a 500."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import secrets
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ingestion.webhooks.config import ReceiverLimits, limits_from_env
from ingestion.webhooks.signatures import sign_stripe

ROOT = Path(__file__).resolve().parents[3]
SECRET = "whsec_" + secrets.token_hex(16)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Receiver:
    def __init__(self, tmp_path: Path, nofile: int | None = None, **env: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.landing = tmp_path / "landing"
        tmp_path.mkdir(parents=True, exist_ok=True)
        full = {**os.environ, "PYTHONPATH": str(ROOT), "PAYSIGHT_WEBHOOK_SOURCES": "stripe",
                "STRIPE_WEBHOOK_SECRET": SECRET, **env}  # fmt: skip

        def limit() -> None:
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ingestion.webhooks", "--landing", str(self.landing),
             "--port", str(self.port), "--log-level", "warning"],
            env=full, cwd=tmp_path, preexec_fn=limit, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(self.proc.stdout.read().decode())  # type: ignore[union-attr]
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError("receiver did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    started: list[Receiver] = []

    def start(**kw) -> Receiver:  # type: ignore[no-untyped-def]
        r = Receiver(tmp_path / f"r{len(started)}", **kw)
        started.append(r)
        return r

    yield start  # type: ignore[misc]
    for r in started:
        r.stop()


def _signed(event_id: str, **extra) -> tuple[bytes, dict[str, str]]:  # type: ignore[no-untyped-def]
    body = json.dumps({"id": event_id, "object": "event", "type": "charge.succeeded", **extra})
    return body.encode(), {"Stripe-Signature": sign_stripe(SECRET, body.encode(), time.time())}


def _raw_post(port: int, event_id: str) -> tuple[int, float]:
    """One signed event on a fresh connection; (status, seconds from connect to answer)."""
    body, headers = _signed(event_id)
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Stripe-Signature: {headers['Stripe-Signature']}\r\n".encode()
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return int(answer.split(b" ", 2)[1]), time.monotonic() - started


def _raise_own_fd_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip(f"this test needs {need} file descriptors; the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def _open(port: int, n: int, first_bytes: bytes) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        sock = socket.socket()
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            sock.connect(("127.0.0.1", port))
        socks.append(sock)
    for sock in socks:
        if first_bytes:
            with contextlib.suppress(OSError):  # dropped already: what it should do anyway
                sock.send(first_bytes)
    return socks


def _closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True  # reset: evicted or timed out


HALF_OPEN = b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\n"  # request line, one header, silence


def test_defaults_drop_silent_clients_within_seconds():
    d = ReceiverLimits()
    assert d.header_timeout_s <= 5 and d.body_timeout_s <= 10 and d.keep_alive_s <= 5
    assert limits_from_env({"PAYSIGHT_WEBHOOK_MAX_CONNECTIONS": "7"}).max_connections == 7


def test_half_open_connections_are_dropped_after_the_header_timeout(receiver):
    r = receiver(PAYSIGHT_WEBHOOK_HEADER_TIMEOUT_S="2")
    _raise_own_fd_limit(1200)
    socks = _open(r.port, 500, HALF_OPEN)
    try:
        time.sleep(0.5)
        assert sum(_closed_by_peer(s) for s in socks) < 50  # still within their time
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and not all(_closed_by_peer(s) for s in socks):
            time.sleep(0.25)
        assert all(_closed_by_peer(s) for s in socks), "half-open connections are still held"
    finally:
        for s in socks:
            s.close()
    assert _raw_post(r.port, "evt_after_half_open")[0] == 200


def _eof_within(sock: socket.socket, seconds: float) -> bool:
    """True when the peer closes `sock` (EOF or reset) within `seconds`; bytes it sends first
    (an answer) are read and skipped."""
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except OSError:
        return True
    return True


def test_slow_bodies_and_idle_keep_alive_are_closed(receiver):
    r = receiver(PAYSIGHT_WEBHOOK_BODY_TIMEOUT_S="1.5", PAYSIGHT_WEBHOOK_KEEP_ALIVE_S="1")
    body, headers = _signed("evt_slow")
    with socket.create_connection(("127.0.0.1", r.port)) as slow:
        slow.sendall(
            b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\n"
            + f"Stripe-Signature: {headers['Stripe-Signature']}\r\n".encode()
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[:10]  # ... and the rest never comes
        )
        started = time.monotonic()
        assert _eof_within(slow, 4), "a body that never completes is held open"
        assert 1.2 < time.monotonic() - started < 4
    with socket.create_connection(("127.0.0.1", r.port)) as idle:
        idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # kept alive after
        assert b" 200 " in idle.recv(4096)
        started = time.monotonic()
        assert _eof_within(idle, 4), "an idle keep-alive connection is held open"
        assert time.monotonic() - started < 3
    landed = b"".join(p.read_bytes() for p in r.landing.rglob("*.jsonl"))
    assert b"evt_slow" not in landed


def test_more_half_open_connections_than_the_cap_still_let_a_valid_event_in(receiver):
    r = receiver(PAYSIGHT_WEBHOOK_MAX_CONNECTIONS="100")
    socks = _open(r.port, 150, HALF_OPEN)
    try:
        time.sleep(0.3)
        status, took = _raw_post(r.port, "evt_over_cap")
        assert status == 200 and took < 1.0, took
        # the oldest waiting ones were dropped to make room, none of them was answered
        assert sum(_closed_by_peer(s) for s in socks) >= 50
    finally:
        for s in socks:
            s.close()


@pytest.mark.slow
def test_2000_idle_and_slow_connections_at_ulimit_1024_do_not_stop_a_valid_event(receiver):
    """The receiver at `ulimit -n 1024`; 1,000 connections that send nothing and 1,000 that
    send half a request: a real sender is still acknowledged within a second."""
    r = receiver(nofile=1024)
    _raise_own_fd_limit(4200)
    idle = _open(r.port, 1000, b"")
    slow = _open(r.port, 1000, HALF_OPEN)
    try:
        time.sleep(0.5)
        results = [_raw_post(r.port, f"evt_ulimit_{i}") for i in range(3)]
        assert [code for code, _ in results] == [200, 200, 200]
        assert max(took for _, took in results) < 1.0, results
    finally:
        for s in idle + slow:
            s.close()
    assert r.proc.poll() is None  # still serving, never out of descriptors


def test_a_junk_flood_at_20x_the_rate_limit_does_not_reject_signed_events(receiver):
    r = receiver(PAYSIGHT_WEBHOOK_RATE_PER_S="5", PAYSIGHT_WEBHOOK_BURST="5")

    async def flood() -> tuple[Counter[int], list[int]]:
        junk: Counter[int] = Counter()
        signed: list[int] = []
        async with httpx.AsyncClient(base_url=r.url, timeout=10) as http:

            async def junk_sender(k: int) -> None:
                for i in range(20):  # 10 senders x 20 = 200 in about 2 s: 100/s = 20x
                    body = json.dumps({"id": f"evt_junk_{k}_{i}", "type": "charge.succeeded"})
                    bad = {"Stripe-Signature": f"t={int(time.time())},v1={'0' * 64}"}
                    headers = bad if i % 2 else {}
                    resp = await http.post("/webhooks/stripe", content=body, headers=headers)
                    junk[resp.status_code] += 1
                    await asyncio.sleep(0.1)

            async def signed_sender() -> None:
                await asyncio.sleep(0.3)  # into the flood
                for i in range(5):  # 2.5/s, under the limit of 5/s
                    body, headers = _signed(f"evt_real_{i}")
                    resp = await http.post("/webhooks/stripe", content=body, headers=headers)
                    signed.append(resp.status_code)
                    await asyncio.sleep(0.4)

            await asyncio.gather(*(junk_sender(k) for k in range(10)), signed_sender())
        return junk, signed

    junk, signed = asyncio.run(flood())
    assert signed == [200] * 5
    assert junk[429] > 100 and set(junk) <= {400, 429}  # junk hits its own bucket
    assert sum(junk.values()) == 200


def test_a_validly_signed_body_nested_1000_deep_is_a_400(receiver):
    r = receiver()
    nested = "[" * 1000 + "]" * 1000
    body = ('{"id":"evt_deep","type":"charge.succeeded","data":' + nested + "}").encode()
    headers = {"Stripe-Signature": sign_stripe(SECRET, body, time.time())}
    resp = httpx.post(f"{r.url}/webhooks/stripe", content=body, headers=headers)
    assert resp.status_code == 400 and "nested deeper" in resp.json()["error"]
    deep_ok = '{"a":' * 30 + "1" + "}" * 30  # a real event is far shallower than the limit
    body2, headers2 = _signed("evt_ok_depth", data=json.loads(deep_ok))
    assert (
        httpx.post(f"{r.url}/webhooks/stripe", content=body2, headers=headers2).status_code == 200
    )
