"""Configuration of the webhook receiver: landing dir, secrets per source, limits, clock."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SOURCES: tuple[str, ...] = ("stripe", "razorpay", "simulated")
MIB = 1024 * 1024


class WebhookConfigError(ValueError):
    """Raised when the receiver configuration is unusable."""


@dataclass(frozen=True)
class RateLimit:
    """Token bucket: `rate_per_s` tokens refill per second, up to `burst` stored tokens."""

    rate_per_s: float
    burst: int

    def __post_init__(self) -> None:
        if self.rate_per_s <= 0 or self.burst < 1:
            raise WebhookConfigError(
                f"rate limit needs rate_per_s > 0 and burst >= 1, got {self.rate_per_s}/{self.burst}"
            )


@dataclass(frozen=True)
class WebhookConfig:
    """Everything the receiver needs. `secrets` maps a source to its accepted secrets.

    Two or more secrets per source are accepted at once so a secret can be rotated without
    dropping deliveries. `clock` returns epoch seconds and is injectable for tests.
    """

    landing_dir: Path
    secrets: Mapping[str, Sequence[str]]
    tolerance_s: int = 300
    max_body_bytes: int = MIB
    rate_limits: Mapping[str, RateLimit] = field(default_factory=dict)
    clock: Callable[[], float] = time.time
    max_signature_header_bytes: int = 8192
    max_signatures: int = 16
    # False fsyncs each event on its own: only for the benchmark baseline.
    group_commit: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "landing_dir", Path(self.landing_dir))
        normalized: dict[str, tuple[str, ...]] = {}
        for source, values in self.secrets.items():
            if source not in SOURCES:
                raise WebhookConfigError(f"unknown webhook source {source!r}; expected {SOURCES}")
            if isinstance(values, str):
                values = [values]
            kept = tuple(v for v in values if v)
            if not kept:
                raise WebhookConfigError(f"webhook source {source!r} has no non-empty secret")
            normalized[source] = kept
        object.__setattr__(self, "secrets", normalized)
        for source in self.rate_limits:
            if source not in SOURCES:
                raise WebhookConfigError(f"rate limit for unknown source {source!r}")
        if self.tolerance_s <= 0 or self.max_body_bytes <= 0:
            raise WebhookConfigError("tolerance_s and max_body_bytes must be positive")


_ENV_SECRETS = {
    "stripe": "STRIPE_WEBHOOK_SECRET",
    "razorpay": "RAZORPAY_WEBHOOK_SECRET",
    "simulated": "PAYSIGHT_SIMULATED_WEBHOOK_SECRET",
}


def config_from_env(landing_dir: Path, env: Mapping[str, str] | None = None) -> WebhookConfig:
    """Build a config from the environment; a secret variable may hold a comma-separated list
    (new,old) during rotation. Sources without a secret are disabled (404)."""
    env = os.environ if env is None else env
    secrets = {
        source: [s.strip() for s in env[var].split(",") if s.strip()]
        for source, var in _ENV_SECRETS.items()
        if env.get(var, "").strip()
    }
    rate = env.get("PAYSIGHT_WEBHOOK_RATE_PER_S")
    limits: dict[str, RateLimit] = {}
    if rate:
        burst = int(env.get("PAYSIGHT_WEBHOOK_BURST", str(int(float(rate)))))
        limits = {s: RateLimit(float(rate), burst) for s in secrets}
    group_commit = env.get("PAYSIGHT_WEBHOOK_GROUP_COMMIT", "1").strip() not in ("0", "false")
    return WebhookConfig(
        landing_dir=landing_dir, secrets=secrets, rate_limits=limits, group_commit=group_commit
    )
