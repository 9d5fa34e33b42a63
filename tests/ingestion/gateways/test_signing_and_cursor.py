"""Stripe-scheme signatures (hostile headers, tolerance) and the shared "since" cursor."""

from datetime import UTC, datetime, timedelta

import pytest
import stripe

from billing_jobs.payments.declines import DECLINE_TABLE
from billing_jobs.payments.gateway import GatewayError
from ingestion.gateways.cursor import page_since
from ingestion.gateways.signing import SignatureError, stripe_signature, verify_stripe_signature
from simulation.gateway import behaviour as sim_world

NOW = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)
BODY = b'{"id":"evt_1","type":"payment_intent.succeeded"}'


def test_roundtrip_and_sdk_agreement():
    header = stripe_signature(BODY, "whsec_x", NOW)
    assert verify_stripe_signature(BODY, header, "whsec_x", NOW) == int(NOW.timestamp())
    # the SDK's own verifier accepts our header (it uses the wall clock, so sign "now")
    live = stripe_signature(BODY, "whsec_x", datetime.now(UTC))
    assert stripe.WebhookSignature.verify_header(BODY.decode(), live, "whsec_x", 300)


def test_any_matching_v1_passes():
    good = stripe_signature(BODY, "whsec_x", NOW).split(",")[1]
    header = f"t={int(NOW.timestamp())},v1={'0' * 64},{good},v0=legacy"
    verify_stripe_signature(BODY, header, "whsec_x", NOW)


@pytest.mark.parametrize(
    ("header", "match"),
    [
        (None, "missing"),
        ("", "missing"),
        ("garbage", "malformed"),
        ("t=abc,v1=00", "not an integer"),
        ("v1=00", "no t="),
        (f"t={int(NOW.timestamp())}", "no v1"),
        (f"t={int(NOW.timestamp())},v1={'0' * 64}", "no v1 signature matches"),
    ],
)
def test_hostile_headers(header, match):
    with pytest.raises(SignatureError, match=match):
        verify_stripe_signature(BODY, header, "whsec_x", NOW)


@pytest.mark.parametrize(
    "skew", [timedelta(seconds=301), timedelta(seconds=-301), timedelta(days=3)]
)
def test_outside_tolerance_rejected(skew):
    header = stripe_signature(BODY, "whsec_x", NOW + skew)
    with pytest.raises(SignatureError, match="tolerance"):
        verify_stripe_signature(BODY, header, "whsec_x", NOW)


def test_tampered_body_or_secret_rejected():
    header = stripe_signature(BODY, "whsec_x", NOW)
    with pytest.raises(SignatureError):
        verify_stripe_signature(BODY.replace(b"succeeded", b"failed"), header, "whsec_x", NOW)
    with pytest.raises(SignatureError):
        verify_stripe_signature(BODY, header, "whsec_y", NOW)


def test_cursor_handles_ties_and_any_input_order():
    objs = [(10, "b"), (10, "a"), (11, "c"), (10, "d"), (12, "e")]
    seen, cursor = [], None
    for _ in range(10):
        items, cursor = page_since(reversed(objs), cursor, 2, lambda o: o[0], lambda o: o[1])
        if not items:
            break
        seen += items
    assert seen == sorted(objs)
    # new objects at the cursor's own timestamp are still picked up
    objs.append((12, "f"))
    items, _ = page_since(objs, cursor, 10, lambda o: o[0], lambda o: o[1])
    assert items == [(12, "f")]


@pytest.mark.parametrize("cursor", ["x:1", "abc", ":a"])
def test_bad_cursor(cursor):
    with pytest.raises(GatewayError):
        page_since([], cursor, 5, lambda o: 0, str)


def test_bad_limit():
    with pytest.raises(GatewayError):
        page_since([], None, 0, lambda o: 0, str)


def test_every_simulated_decline_code_is_classified():
    codes = {c for mix in sim_world.CODE_MIX.values() for c, _ in mix} | set(
        sim_world.UNRELIABLE.values()
    )
    missing = sorted(c for c in codes if ("simulated", c) not in DECLINE_TABLE)
    assert missing == []
