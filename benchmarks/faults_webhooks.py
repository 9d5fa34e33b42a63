"""The webhook receiver under load for `benchmarks/faults.py`: a real `python -m
ingestion.webhooks` process on 127.0.0.1, senders POSTing validly signed Stripe events, and a
SIGKILL at a random moment; an event is acknowledged when its sender got a 2xx."""

from __future__ import annotations

import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from ingestion.webhooks.signatures import stripe_signature

ROOT = Path(__file__).resolve().parents[1]
PATH = "/webhooks/stripe"
SENDERS = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """One receiver process at a time on a fixed port and landing zone."""

    def __init__(self, landing: Path, log: Path) -> None:
        self.landing, self.port = landing, _free_port()
        self.secret = "whsec_" + secrets.token_hex(16)  # per run: no repository secret
        self.log = log
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    def start(self) -> None:
        env = {**os.environ, "STRIPE_WEBHOOK_SECRET": self.secret, "PYTHONPATH": str(ROOT)}
        env.pop("PAYSIGHT_WEBHOOK_SOURCES", None)
        cmd = [sys.executable, "-m", "ingestion.webhooks", "--landing", str(self.landing)]
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen(
                [*cmd, "--port", str(self.port), "--log-level", "warning"],
                env=env,
                cwd=self.landing.parent,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the webhook receiver exited; see {self.log}")
            try:
                health = f"http://127.0.0.1:{self.port}/healthz"
                if httpx.get(health, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the webhook receiver did not start; see {self.log}")
            time.sleep(0.05)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)

    def post(self, client: httpx.Client, event_id: str) -> bool:
        """POST one signed event; True when the receiver acknowledged it (2xx)."""
        body = json.dumps({"id": event_id, "object": "event", "type": "charge.succeeded",
                           "data": {"object": {"id": f"ch_{event_id}"}}}).encode()  # fmt: skip
        t = int(time.time())  # the receiver checks signatures against its own clock
        headers = {"Stripe-Signature": f"t={t},v1={stripe_signature(self.secret, t, body)}"}
        try:
            return client.post(self.url, content=body, headers=headers, timeout=5).is_success
        except httpx.TransportError:
            return False


def _sender(rx: Receiver, name: str, stop: threading.Event, acked: set[str],
            unacked: set[str], lock: threading.Lock) -> None:  # fmt: skip
    n = 0
    with httpx.Client() as client:
        while not stop.is_set():
            n += 1
            event_id = f"evt_{name}_{n}"
            ok = rx.post(client, event_id)
            with lock:
                (acked if ok else unacked).add(event_id)
            if not ok:
                time.sleep(0.01)


def kill_under_load(rx: Receiver, rng: random.Random, rnd: int, acked: set[str]) -> int:
    """Start the receiver, load it, SIGKILL it at a random moment, restart it (as the process
    supervisor would) and let the senders re-deliver what was not acknowledged. Returns how
    many events were re-delivered (in flight or refused when the receiver died)."""
    rx.start()
    stop, lock, unacked = threading.Event(), threading.Lock(), set[str]()
    senders = [
        threading.Thread(target=_sender, args=(rx, f"r{rnd}s{i}", stop, acked, unacked, lock))
        for i in range(SENDERS)
    ]
    for s in senders:
        s.start()
    time.sleep(rng.uniform(0.05, 1.0))
    rx.kill()
    stop.set()
    for s in senders:
        s.join(30)
    rx.start()
    again = sorted(unacked - acked)
    with httpx.Client() as client:
        for event_id in again:
            for _ in range(20):  # the sender retries until acknowledged
                if rx.post(client, event_id):
                    acked.add(event_id)
                    break
                time.sleep(0.1)
            else:
                raise RuntimeError(f"event {event_id} was never acknowledged after the restart")
    rx.stop()
    return len(again)
