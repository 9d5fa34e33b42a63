"""Every HTTP status of the receiver, through Starlette's TestClient (real journal on disk)."""

from __future__ import annotations

import json
import logging

from ingestion.webhooks import RateLimit
from ingestion.webhooks.signatures import stripe_signature
from tests.ingestion.webhooks.webhook_helpers import (
    NOW,
    SECRETS,
    journal_lines,
    razorpay_event,
    razorpay_headers,
    stripe_event,
    stripe_headers,
)

STRIPE = "/webhooks/stripe"


def test_valid_stripe_event_is_landed_before_200(client, tmp_path):
    body = stripe_event("evt_ok", "invoice.paid")
    resp = client.post(STRIPE, content=body, headers=stripe_headers(body))
    assert resp.status_code == 200
    assert resp.json() == {"status": "accepted"}
    [line] = journal_lines(tmp_path / "landing")
    assert line["source"] == "stripe"
    assert line["event_id"] == "evt_ok"
    assert line["event_type"] == "invoice.paid"
    assert line["signature_verified"] is True
    assert line["body"] == body.decode()
    assert line["received_at"].startswith("2026-09-21T")
    files = list((tmp_path / "landing" / "webhooks" / "stripe").glob("*/*.jsonl"))
    assert files[0].parent.name == "2026-09-21"


def test_tampered_body_is_rejected(client, tmp_path):
    body = stripe_event("evt_t")
    headers = stripe_headers(body)
    resp = client.post(STRIPE, content=body.replace(b"charge", b"refund"), headers=headers)
    assert resp.status_code == 400
    assert "no Stripe-Signature v1 matches" in resp.json()["error"]
    assert journal_lines(tmp_path / "landing") == []


def test_wrong_secret_is_rejected(client):
    body = stripe_event("evt_w")
    resp = client.post(STRIPE, content=body, headers=stripe_headers(body, secret="whsec_other"))
    assert resp.status_code == 400


def test_old_and_future_timestamps_are_rejected(client, clock):
    body = stripe_event("evt_time")
    old = client.post(STRIPE, content=body, headers=stripe_headers(body, t=NOW - 301))
    future = client.post(STRIPE, content=body, headers=stripe_headers(body, t=NOW + 301))
    assert old.status_code == 400 and "tolerance" in old.json()["error"]
    assert future.status_code == 400 and "tolerance" in future.json()["error"]
    edge = client.post(STRIPE, content=body, headers=stripe_headers(body, t=NOW - 300))
    assert edge.status_code == 200


def test_duplicate_event_id_is_acknowledged_once(client, tmp_path):
    body = stripe_event("evt_dup")
    first = client.post(STRIPE, content=body, headers=stripe_headers(body))
    second = client.post(STRIPE, content=body, headers=stripe_headers(body))
    assert first.json() == {"status": "accepted"}
    assert second.status_code == 200 and second.json() == {"status": "duplicate"}
    assert len(journal_lines(tmp_path / "landing")) == 1


def test_same_id_on_other_source_is_not_a_duplicate(client, tmp_path):
    body = stripe_event("evt_shared")
    client.post(STRIPE, content=body, headers=stripe_headers(body))
    resp = client.post(
        "/webhooks/simulated",
        content=body,
        headers=stripe_headers(body, secret=SECRETS["simulated"][0]),
    )
    assert resp.json() == {"status": "accepted"}
    assert len(journal_lines(tmp_path / "landing")) == 2


def test_simulated_source_needs_its_own_secret(client):
    body = stripe_event("evt_sim")
    resp = client.post("/webhooks/simulated", content=body, headers=stripe_headers(body))
    assert resp.status_code == 400


def test_signed_malformed_json_is_rejected(client):
    for body in (b'{"id": "evt_1", "type": ', b"[1,2]", b""):
        resp = client.post(STRIPE, content=body, headers=stripe_headers(body))
        assert resp.status_code == 400, body


def test_oversize_body_by_content_length(make_client):
    client = make_client(max_body_bytes=1024)
    body = stripe_event("evt_big", pad="x" * 2000)
    resp = client.post(STRIPE, content=body, headers=stripe_headers(body))
    assert resp.status_code == 413


def test_oversize_body_streamed_without_content_length(make_client, tmp_path):
    client = make_client(max_body_bytes=1024)

    def chunks():
        for _ in range(100):
            yield b"x" * 512

    resp = client.post(STRIPE, content=chunks(), headers={"Stripe-Signature": "t=1,v1=00"})
    assert resp.status_code == 413
    assert journal_lines(tmp_path / "landing") == []


def test_default_limit_is_one_mebibyte(client):
    body = stripe_event("evt_mib", pad="x" * (1024 * 1024))
    resp = client.post(STRIPE, content=body, headers=stripe_headers(body))
    assert resp.status_code == 413


def test_missing_signature_header(client):
    body = stripe_event("evt_nohdr")
    assert client.post(STRIPE, content=body).status_code == 400
    rzp = client.post("/webhooks/razorpay", content=razorpay_event())
    assert rzp.status_code == 400
    assert "missing X-Razorpay-Signature" in rzp.json()["error"]


def test_malformed_signature_headers(client):
    body = stripe_event("evt_m")
    for header in ("garbage", "t=abc,v1=00", "v1=00", f"t={int(NOW)}", "t=,v1="):
        resp = client.post(STRIPE, content=body, headers={"Stripe-Signature": header})
        assert resp.status_code == 400, header


def test_several_v1_signatures_one_valid(client):
    body = stripe_event("evt_multi")
    good = stripe_signature(SECRETS["stripe"][0], int(NOW), body)
    header = f"t={int(NOW)},v1={'0' * 64},v0=deadbeef,v1={good},v1=zz"
    resp = client.post(STRIPE, content=body, headers={"Stripe-Signature": header})
    assert resp.json() == {"status": "accepted"}


def test_rotated_secret_accepts_both_then_only_new(make_client):
    rotating = make_client(secrets={**SECRETS, "stripe": ["whsec_new", "whsec_old"]})
    for i, secret in enumerate(("whsec_new", "whsec_old")):
        body = stripe_event(f"evt_rot{i}")
        resp = rotating.post(STRIPE, content=body, headers=stripe_headers(body, secret=secret))
        assert resp.json() == {"status": "accepted"}, secret
    rotating.__exit__(None, None, None)  # one receiver per landing zone
    rotated = make_client(secrets={**SECRETS, "stripe": ["whsec_new"]})
    body = stripe_event("evt_rot_late")
    resp = rotated.post(STRIPE, content=body, headers=stripe_headers(body, secret="whsec_old"))
    assert resp.status_code == 400


def test_razorpay_event_id_from_header_or_payload(client, tmp_path):
    body = razorpay_event("payment.captured")
    resp = client.post("/webhooks/razorpay", content=body, headers=razorpay_headers(body))
    assert resp.json() == {"status": "accepted"}
    body2 = razorpay_event("refund.processed", id="evt_in_payload")
    resp2 = client.post(
        "/webhooks/razorpay", content=body2, headers=razorpay_headers(body2, event_id=None)
    )
    assert resp2.json() == {"status": "accepted"}
    ids = {line["event_id"] for line in journal_lines(tmp_path / "landing")}
    assert ids == {"Evt_RZP_1", "evt_in_payload"}
    body3 = razorpay_event("payment.failed")
    resp3 = client.post(
        "/webhooks/razorpay", content=body3, headers=razorpay_headers(body3, event_id=None)
    )
    assert resp3.status_code == 400 and resp3.json()["error"] == "missing event id"


def test_razorpay_bad_signature(client):
    body = razorpay_event()
    headers = razorpay_headers(body, secret="not-the-secret")
    assert client.post("/webhooks/razorpay", content=body, headers=headers).status_code == 400
    headers = razorpay_headers(body)
    tampered = body.replace(b"captured", b"failed__")
    assert client.post("/webhooks/razorpay", content=tampered, headers=headers).status_code == 400


def test_rate_limit_per_source_refills_with_clock(make_client, clock):
    client = make_client(rate_limits={"stripe": RateLimit(rate_per_s=1, burst=2)})
    codes = []
    for i in range(3):
        body = stripe_event(f"evt_rl{i}")
        codes.append(client.post(STRIPE, content=body, headers=stripe_headers(body)).status_code)
    assert codes == [200, 200, 429]
    # Another source has its own (here: no) bucket.
    rbody = razorpay_event()
    assert (
        client.post("/webhooks/razorpay", content=rbody, headers=razorpay_headers(rbody))
    ).status_code == 200
    clock.now += 1.0
    body = stripe_event("evt_rl_after")
    assert client.post(STRIPE, content=body, headers=stripe_headers(body)).status_code == 200


def test_landing_zone_failure_is_503_never_2xx(make_client, tmp_path):
    landing = tmp_path / "broken"
    landing.mkdir()
    (landing / "webhooks").write_text("not a directory")
    client = make_client(landing_dir=landing)
    body = stripe_event("evt_503")
    resp = client.post(STRIPE, content=body, headers=stripe_headers(body))
    assert resp.status_code == 503
    again = client.post(STRIPE, content=body, headers=stripe_headers(body))
    assert again.status_code == 503  # not "duplicate": nothing was persisted
    assert client.get("/healthz").status_code in (200, 503)


def test_unknown_source_and_healthz(client):
    assert client.post("/webhooks/paypal", content=b"{}").status_code == 404
    assert client.get("/healthz").json() == {"status": "ok"}


def test_dedup_survives_restart(make_client, tmp_path):
    body = stripe_event("evt_restart")
    first = make_client()
    assert first.post(STRIPE, content=body, headers=stripe_headers(body)).json() == {
        "status": "accepted"
    }
    first.__exit__(None, None, None)
    second = make_client()
    resp = second.post(STRIPE, content=body, headers=stripe_headers(body))
    assert resp.json() == {"status": "duplicate"}
    assert len(journal_lines(tmp_path / "landing")) == 1


def test_logs_are_json_without_body(client, caplog):
    body = stripe_event(
        "evt_log", customer_email="priya@example.com", card_number="4242424242424242"
    )
    with caplog.at_level(logging.INFO, logger="paysight.webhooks"):
        client.post(STRIPE, content=body, headers=stripe_headers(body))
        client.post(STRIPE, content=body, headers={"Stripe-Signature": "t=1,v1=00"})
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "paysight.webhooks"]
    assert [r["http_status"] for r in records] == [200, 400]
    assert records[0]["event_id"] == "evt_log" and records[0]["source"] == "stripe"
    assert records[0]["event_type"] == "charge.succeeded" and "latency_ms" in records[0]
    text = caplog.text
    assert "4242424242424242" not in text and "priya@example.com" not in text


def test_second_receiver_on_the_same_landing_zone_is_refused(make_client, tmp_path):
    first = make_client()
    second = make_client()
    body = stripe_event("evt_lock")
    resp = second.post(STRIPE, content=body, headers=stripe_headers(body))
    assert resp.status_code == 503
    health = second.get("/healthz")
    assert health.status_code == 503 and "another receiver" in health.json()["error"]
    assert first.post(STRIPE, content=body, headers=stripe_headers(body)).status_code == 200
    first.__exit__(None, None, None)
    third = make_client()  # the lock is free again once the holder stops
    assert third.post(STRIPE, content=body, headers=stripe_headers(body)).json() == {
        "status": "duplicate"
    }


def test_get_on_webhook_route_is_405_and_lands_nothing(client, tmp_path):
    resp = client.get(STRIPE)
    assert resp.status_code == 405 and resp.headers["allow"] == "POST"
    assert client.post("/webhooks/stripe/extra", content=b"{}").status_code == 404
    assert journal_lines(tmp_path / "landing") == []
