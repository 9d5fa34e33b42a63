"""Receiver configuration, token bucket and day-partitioned journal files."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingestion.webhooks import RateLimit, WebhookConfig, config_from_env
from ingestion.webhooks.config import WebhookConfigError
from ingestion.webhooks.ratelimit import TokenBucket
from tests.ingestion.webhooks.webhook_helpers import stripe_event, stripe_headers


def test_config_from_env_reads_rotation_lists(tmp_path):
    env = {
        "STRIPE_WEBHOOK_SECRET": "whsec_new, whsec_old",
        "RAZORPAY_WEBHOOK_SECRET": "rzp",
        "PAYSIGHT_WEBHOOK_RATE_PER_S": "50",
        "PAYSIGHT_WEBHOOK_BURST": "100",
    }
    config = config_from_env(tmp_path, env)
    assert config.secrets == {"stripe": ("whsec_new", "whsec_old"), "razorpay": ("rzp",)}
    assert config.rate_limits["stripe"] == RateLimit(50.0, 100)
    assert "simulated" not in config.secrets  # no secret: the route answers 404
    assert config.group_commit is True
    assert config_from_env(tmp_path, {"PAYSIGHT_WEBHOOK_GROUP_COMMIT": "0"}).group_commit is False


@pytest.mark.parametrize(
    "kwargs",
    [
        {"secrets": {"paypal": ["x"]}},
        {"secrets": {"stripe": ["", ""]}},
        {"secrets": {"stripe": ["x"]}, "tolerance_s": 0},
        {"secrets": {"stripe": ["x"]}, "rate_limits": {"paypal": RateLimit(1, 1)}},
    ],
)
def test_invalid_config_is_refused(kwargs):
    with pytest.raises(WebhookConfigError):
        WebhookConfig(landing_dir=Path("x"), **kwargs)
    with pytest.raises(WebhookConfigError):
        RateLimit(0, 1)


def test_token_bucket_does_not_mint_tokens_when_the_clock_steps_back():
    now = [100.0]
    bucket = TokenBucket(RateLimit(rate_per_s=1, burst=1), lambda: now[0])
    assert bucket.allow() and not bucket.allow()
    now[0] = 50.0
    assert not bucket.allow()
    now[0] = 51.0
    assert bucket.allow()


def test_events_are_partitioned_by_utc_day(client, clock, tmp_path):
    for event_id in ("evt_day1", "evt_day2"):
        body = stripe_event(event_id)
        resp = client.post(
            "/webhooks/stripe", content=body, headers=stripe_headers(body, t=clock.now)
        )
        assert resp.status_code == 200
        clock.now += 86_400
    days = sorted(p.name for p in (tmp_path / "landing" / "webhooks" / "stripe").iterdir())
    assert days == ["2026-09-21", "2026-09-22"]
