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
        "STRIPE_WEBHOOK_SECRET": "whsec_new_0123456789, whsec_old_0123456789",
        "RAZORPAY_WEBHOOK_SECRET": "rzp_secret_0123456789",
        "PAYSIGHT_WEBHOOK_RATE_PER_S": "50",
        "PAYSIGHT_WEBHOOK_BURST": "100",
    }
    config = config_from_env(tmp_path, env)
    assert config.secrets == {
        "stripe": ("whsec_new_0123456789", "whsec_old_0123456789"),
        "razorpay": ("rzp_secret_0123456789",),
    }
    assert config.rate_limits["stripe"] == RateLimit(50.0, 100)
    assert config.invalid_rate_limit == RateLimit(50.0, 50)  # its own bucket, same rate
    assert "simulated" not in config.secrets  # not enabled: the route answers 404
    assert config.group_commit is True
    off = config_from_env(tmp_path, {**env, "PAYSIGHT_WEBHOOK_GROUP_COMMIT": "0"})
    assert off.group_commit is False


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


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"PAYSIGHT_WEBHOOK_SOURCES": "simulated"}, "PAYSIGHT_SIMULATED_WEBHOOK_SECRET"),
        ({"PAYSIGHT_WEBHOOK_SOURCES": "stripe,razorpay",
          "STRIPE_WEBHOOK_SECRET": "whsec_0123456789abcdef"}, "RAZORPAY_WEBHOOK_SECRET"),
        ({"PAYSIGHT_WEBHOOK_SOURCES": "stripe", "STRIPE_WEBHOOK_SECRET": " , "},
         "STRIPE_WEBHOOK_SECRET"),
        ({"STRIPE_WEBHOOK_SECRET": "short"}, "STRIPE_WEBHOOK_SECRET"),
        ({"PAYSIGHT_WEBHOOK_SOURCES": "paypal"}, "PAYSIGHT_WEBHOOK_SOURCES"),
        ({"STRIPE_WEBHOOK_SECRET": "whsec_0123456789abcdef",
          "PAYSIGHT_WEBHOOK_MAX_CONNECTIONS": "many"}, "PAYSIGHT_WEBHOOK_MAX_CONNECTIONS"),
    ],
)  # fmt: skip
def test_an_enabled_source_without_its_secret_is_refused_naming_the_variable(
    tmp_path, env, variable
):
    with pytest.raises(WebhookConfigError, match=variable):
        config_from_env(tmp_path, env)


def test_a_receiver_with_no_source_enabled_is_refused(tmp_path):
    with pytest.raises(WebhookConfigError, match="PAYSIGHT_WEBHOOK_SOURCES"):
        config_from_env(tmp_path, {})


def test_module_start_up_without_a_secret_exits_2_naming_the_variable(tmp_path):
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[3]
    env = {k: v for k, v in os.environ.items() if "WEBHOOK" not in k}
    done = subprocess.run(
        [sys.executable, "-m", "ingestion.webhooks", "--landing", str(tmp_path / "l")],
        env={**env, "PYTHONPATH": str(root), "PAYSIGHT_WEBHOOK_SOURCES": "stripe"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "STRIPE_WEBHOOK_SECRET" in done.stderr and "Traceback" not in done.stderr


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
