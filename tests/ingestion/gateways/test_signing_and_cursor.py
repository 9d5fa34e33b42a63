"""Stripe-scheme signatures through the one verifier (hostile headers, tolerance, agreement with
the SDK) and the shared "since" cursor."""

from datetime import UTC, datetime, timedelta

import pytest
import stripe

from billing_jobs.payments.declines import DECLINE_TABLE
from billing_jobs.payments.gateway import GatewayError
from ingestion.gateways.cursor import page_since
from ingestion.webhooks.signatures import SignatureError, sign_stripe, verify_stripe
from simulation.gateway import behaviour as sim_world

NOW = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)
BODY = b'{"id":"evt_1","type":"payment_intent.succeeded"}'
SECRET = "whsec_signing_test_secret"


def _verify(header, body=BODY, secret=SECRET, now=NOW):  # type: ignore[no-untyped-def]
    return verify_stripe(header, body, [secret], now=now.timestamp(), tolerance_s=300)


def test_roundtrip_and_sdk_agreement():
    header = sign_stripe(SECRET, BODY, NOW.timestamp())
    assert _verify(header) == int(NOW.timestamp())
    # the SDK's own verifier accepts our header (it uses the wall clock, so sign "now")
    live = sign_stripe(SECRET, BODY, datetime.now(UTC).timestamp())
    assert stripe.WebhookSignature.verify_header(BODY.decode(), live, SECRET, 300)
    # and ours accepts the SDK's signature scheme for the same secret
    sdk = stripe.WebhookSignature._compute_signature(f"{int(NOW.timestamp())}.{BODY.decode()}",
                                                     SECRET)  # fmt: skip
    assert _verify(f"t={int(NOW.timestamp())},v1={sdk}") == int(NOW.timestamp())


def test_any_matching_v1_passes():
    good = sign_stripe(SECRET, BODY, NOW.timestamp()).split(",")[1]
    header = f"t={int(NOW.timestamp())},v1={'0' * 64},{good},v0=legacy"
    _verify(header)


@pytest.mark.parametrize(
    ("header", "match"),
    [
        (None, "missing"),
        ("", "missing"),
        ("garbage", "no t="),
        ("t=abc,v1=00", "not an integer"),
        ("v1=00", "no t="),
        (f"t={int(NOW.timestamp())}", "no v1"),
        (f"t={int(NOW.timestamp())},v1={'0' * 64}", "no Stripe-Signature v1 matches"),
    ],
)
def test_hostile_headers(header, match):
    with pytest.raises(SignatureError, match=match):
        _verify(header)


@pytest.mark.parametrize(
    "skew", [timedelta(seconds=301), timedelta(seconds=-301), timedelta(days=3)]
)
def test_outside_tolerance_rejected(skew):
    header = sign_stripe(SECRET, BODY, (NOW + skew).timestamp())
    with pytest.raises(SignatureError, match="tolerance"):
        _verify(header)


def test_tampered_body_or_secret_rejected():
    header = sign_stripe(SECRET, BODY, NOW.timestamp())
    with pytest.raises(SignatureError):
        _verify(header, body=BODY.replace(b"succeeded", b"failed"))
    with pytest.raises(SignatureError):
        _verify(header, secret="whsec_another_secret_value")


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
