"""Hostile inputs: huge headers, non-UTF-8 bodies, path characters in ids, bad lengths."""

from __future__ import annotations

import json

from ingestion.webhooks.signatures import stripe_signature
from tests.ingestion.webhooks.webhook_helpers import (
    NOW,
    journal_lines,
    razorpay_headers,
    stripe_event,
    stripe_headers,
)

STRIPE = "/webhooks/stripe"


def test_huge_signature_header_is_rejected(client):
    body = stripe_event("evt_hh")
    good = stripe_headers(body)["Stripe-Signature"]
    header = good + ",v1=" + "a" * 100_000
    resp = client.post(STRIPE, content=body, headers={"Stripe-Signature": header})
    assert resp.status_code == 400 and "too large" in resp.json()["error"]


def test_too_many_v1_entries_is_rejected(client):
    body = stripe_event("evt_many")
    good = stripe_signature("whsec_stripe_current", int(NOW), body)
    header = f"t={int(NOW)}," + ",".join(["v1=00"] * 50) + f",v1={good}"
    assert (
        client.post(STRIPE, content=body, headers={"Stripe-Signature": header}).status_code == 400
    )


def test_non_utf8_body_is_rejected_even_when_signed(client, tmp_path):
    body = b'{"id": "evt_bin", "type": "x", "n": "\xff\xfe\xfa"}'
    resp = client.post(STRIPE, content=body, headers=stripe_headers(body))
    assert resp.status_code == 400 and "UTF-8" in resp.json()["error"]
    assert journal_lines(tmp_path / "landing") == []


def test_event_ids_with_path_characters_are_rejected(client, tmp_path):
    for bad in ("../../etc/passwd", "evt/1", "evt\n2", "evt\x00", "a" * 500, "évt"):
        body = json.dumps({"id": bad, "type": "charge.succeeded"}).encode()
        resp = client.post(STRIPE, content=body, headers=stripe_headers(body))
        assert resp.status_code == 400, bad
    body = b'{"entity":"event","event":"payment.captured"}'
    resp = client.post(
        "/webhooks/razorpay", content=body, headers=razorpay_headers(body, event_id="../x")
    )
    assert resp.status_code == 400
    assert journal_lines(tmp_path / "landing") == []
    assert not (tmp_path / "etc").exists()


def test_non_string_id_and_type_are_rejected(client):
    for payload in ({"id": 5, "type": "x"}, {"id": "evt_5", "type": ["x"]}, {"type": "x"}):
        body = json.dumps(payload).encode()
        assert client.post(STRIPE, content=body, headers=stripe_headers(body)).status_code == 400


def test_body_with_line_breaks_stays_one_journal_line(client, tmp_path):
    body = b'{\n"id": "evt_nl",\r\n "type": "charge.succeeded", "note": "a\\u2028b\\nc"\n}'
    resp = client.post(STRIPE, content=body, headers=stripe_headers(body))
    assert resp.status_code == 200
    [line] = journal_lines(tmp_path / "landing")
    assert line["body"] == body.decode()
