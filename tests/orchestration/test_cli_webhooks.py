"""`paysight webhooks serve` runs the real receiver: a signed event lands, a bad one is refused."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from ingestion.webhooks.signatures import stripe_signature


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(port: int, body: bytes, headers: dict) -> tuple[int, dict]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/webhooks/simulated",
        data=body,
        headers={"Content-Type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


_SERVE = [sys.executable, "-m", "orchestration.cli", "webhooks", "serve"]


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_lands_signed_events(paysight_env, tmp_path, workers):
    port = _free_port()
    env = {**os.environ, "PAYSIGHT_SIMULATED_WEBHOOK_SECRET": "whsec_cli_test"}
    proc = subprocess.Popen(
        [*_SERVE, "--port", str(port), "--workers", str(workers)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        else:
            raise AssertionError("receiver did not start")
        body = json.dumps({"id": "evt_cli_1", "type": "charge.succeeded"}).encode()
        t = int(time.time())
        good = {"Stripe-Signature": f"t={t},v1={stripe_signature('whsec_cli_test', t, body)}"}
        assert _post(port, body, good) == (200, {"status": "accepted"})
        assert _post(port, body, good) == (200, {"status": "duplicate"})
        bad = {"Stripe-Signature": f"t={t},v1={'0' * 64}"}
        assert _post(port, body, bad)[0] == 400
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    landed = list((paysight_env / "landing").rglob("*.jsonl"))
    assert landed and b"evt_cli_1" in landed[0].read_bytes()


def test_serve_refuses_zero_workers(paysight_env, tmp_path):
    env = {**os.environ, "PAYSIGHT_SIMULATED_WEBHOOK_SECRET": "whsec_cli_test"}
    done = subprocess.run(
        [*_SERVE, "--workers", "0"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "--workers" in done.stderr
    assert "Traceback" not in done.stderr
