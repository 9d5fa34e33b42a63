"""Signing helpers and constants shared by the webhook receiver tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ingestion.webhooks.signatures import razorpay_signature, stripe_signature

NOW = 1_790_000_000.0
SECRETS = {
    "stripe": ["whsec_stripe_current"],
    "razorpay": ["rzp_webhook_secret"],
    "simulated": ["whsec_simulated"],
}


@dataclass
class FakeClock:
    now: float = NOW

    def __call__(self) -> float:
        return self.now


def stripe_event(event_id: str = "evt_1", event_type: str = "charge.succeeded", **extra) -> bytes:
    payload = {"id": event_id, "object": "event", "type": event_type, "data": {"object": {}}}
    payload.update(extra)
    return json.dumps(payload).encode()


def stripe_headers(body: bytes, secret: str = SECRETS["stripe"][0], t: float = NOW) -> dict:
    ts = int(t)
    return {"Stripe-Signature": f"t={ts},v1={stripe_signature(secret, ts, body)}"}


def razorpay_event(event_type: str = "payment.captured", **extra) -> bytes:
    payload = {"entity": "event", "event": event_type, "payload": {}, "created_at": int(NOW)}
    payload.update(extra)
    return json.dumps(payload).encode()


def razorpay_headers(body: bytes, event_id: str | None = "Evt_RZP_1", secret: str = "") -> dict:
    headers = {"X-Razorpay-Signature": razorpay_signature(secret or SECRETS["razorpay"][0], body)}
    if event_id is not None:
        headers["X-Razorpay-Event-Id"] = event_id
    return headers


def journal_lines(landing: Path) -> list[dict]:
    lines = []
    for path in sorted((landing / "webhooks").glob("*/*/*.jsonl")):
        lines += [json.loads(x) for x in path.read_text().splitlines()]
    return lines
