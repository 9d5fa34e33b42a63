"""`paysight webhooks serve` runs the real receiver: a signed event lands, a bad one is refused;
there is no default secret (start-up without one fails naming the variable, and an event signed
with any secret the repository contains is refused)."""

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from ingestion.webhooks.signatures import stripe_signature
from orchestration.lib.paths import PROJECT_ROOT

SECRET = "whsec_" + secrets.token_hex(16)  # generated per run, like an installation's


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
    env = {**os.environ, "PAYSIGHT_SIMULATED_WEBHOOK_SECRET": SECRET}
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
        good = {"Stripe-Signature": f"t={t},v1={stripe_signature(SECRET, t, body)}"}
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
    env = {**os.environ, "PAYSIGHT_SIMULATED_WEBHOOK_SECRET": SECRET}
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


@pytest.mark.parametrize(
    ("extra", "variable"),
    [
        ({}, "PAYSIGHT_SIMULATED_WEBHOOK_SECRET"),  # the default: the demo's simulated source
        ({"PAYSIGHT_GATEWAYS": "stripe"}, "STRIPE_WEBHOOK_SECRET"),
        ({"PAYSIGHT_WEBHOOK_SOURCES": "razorpay"}, "RAZORPAY_WEBHOOK_SECRET"),
        ({"PAYSIGHT_WEBHOOK_SOURCES": "stripe", "STRIPE_WEBHOOK_SECRET": "short"},
         "STRIPE_WEBHOOK_SECRET"),
    ],
)  # fmt: skip
def test_start_up_without_a_secret_for_an_enabled_source_names_the_variable(
    paysight_env, tmp_path, extra, variable
):
    env = {k: v for k, v in os.environ.items() if "WEBHOOK" not in k and k != "PAYSIGHT_GATEWAYS"}
    done = subprocess.run(
        [*_SERVE, "--port", str(_free_port())],
        env={**env, **extra},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert variable in done.stderr and "Traceback" not in done.stderr


def _repository_secrets() -> set[str]:
    """Every string in the repository that looks like a webhook secret: `whsec_...` tokens and
    literals next to a name with "secret" in it (defaults, tests, docs, benchmarks)."""
    files = subprocess.run(
        ["git", "ls-files"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    found = {"whsec_simulated_local", "whsec_simulated"}  # the defaults that used to ship
    for name in files:
        path = PROJECT_ROOT / name
        if path.suffix not in {".py", ".md", ".yaml", ".yml", ".toml", ".env", ".txt", ""}:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        found.update(re.findall(r"whsec_[A-Za-z0-9_]+", text))
        found.update(re.findall(r"[\"']([A-Za-z0-9_\-]*secret[A-Za-z0-9_\-]*)[\"']", text))
        found.update(
            re.findall(r"(?i)secret\w*[\"']?\s*[:=,(]\s*\[?[\"']([^\"'\s]{3,80})[\"']", text)
        )
    return found


def test_forged_events_signed_with_any_repository_secret_are_refused(paysight_env, tmp_path):
    """The demo installation (default settings, the secret `paysight simulate` generates):
    no secret found anywhere in the repository signs an event it accepts."""
    from orchestration.lib.env import ensure_simulated_webhook_secret, load_settings

    generated = ensure_simulated_webhook_secret(load_settings())
    candidates = _repository_secrets()
    assert len(candidates) > 10 and generated not in candidates
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if "WEBHOOK" not in k and k != "PAYSIGHT_GATEWAYS"}
    proc = subprocess.Popen(
        [*_SERVE, "--port", str(port)], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        _wait_healthy(port, proc)
        for i, secret in enumerate(sorted(candidates)):
            body = json.dumps({"id": f"evt_forged_{i}", "type": "payment_intent.succeeded"})
            t = int(time.time())
            sig = stripe_signature(secret, t, body.encode())
            status, _ = _post(port, body.encode(), {"Stripe-Signature": f"t={t},v1={sig}"})
            assert status == 400, secret
        body = json.dumps({"id": "evt_real", "type": "payment_intent.succeeded"}).encode()
        t = int(time.time())
        real = {"Stripe-Signature": f"t={t},v1={stripe_signature(generated, t, body)}"}
        assert _post(port, body, real) == (200, {"status": "accepted"})
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _wait_healthy(port: int, proc: subprocess.Popen) -> None:
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(proc.stdout.read().decode() if proc.stdout else "exited")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise AssertionError("receiver did not start")
