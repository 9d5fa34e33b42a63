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
class ReceiverLimits:
    """What one receiver process tolerates from its clients (see `transport.GuardedProtocol`).

    A connection must send its request line and headers within `header_timeout_s` and its body
    within `body_timeout_s` after that; an idle keep-alive connection is closed after
    `keep_alive_s`. At most `max_connections` are open at once (lowered to what the process's
    file-descriptor limit allows): beyond that the oldest connection still waiting for a request
    is dropped, so idle or slow clients never lock out a sender with a whole request. Bodies
    nested deeper than `max_json_depth` are refused with 400."""

    header_timeout_s: float = 5.0
    body_timeout_s: float = 10.0
    keep_alive_s: float = 5.0
    max_connections: int = 1000
    max_json_depth: int = 64

    def __post_init__(self) -> None:
        for name in ("header_timeout_s", "body_timeout_s", "keep_alive_s"):
            if not 0 < getattr(self, name) <= 600:
                raise WebhookConfigError(f"{name} must be in (0, 600] seconds")
        if not 1 <= self.max_connections <= 1_000_000:
            raise WebhookConfigError("max_connections must be in 1..1000000")
        if not 2 <= self.max_json_depth <= 512:
            raise WebhookConfigError("max_json_depth must be in 2..512")


@dataclass(frozen=True)
class WebhookConfig:
    """Everything the receiver needs. `secrets` maps each enabled source to its accepted
    secrets; a source not in it answers 404.

    Two or more secrets per source are accepted at once so a secret can be rotated without
    dropping deliveries. `rate_limits` apply per source to requests whose signature verified;
    `invalid_rate_limit` is a separate bucket per source for unsigned or badly signed ones, so a
    flood of junk never spends the budget of real events. `clock` returns epoch seconds and is
    injectable for tests.
    """

    landing_dir: Path
    secrets: Mapping[str, Sequence[str]]
    tolerance_s: int = 300
    max_body_bytes: int = MIB
    rate_limits: Mapping[str, RateLimit] = field(default_factory=dict)
    invalid_rate_limit: RateLimit | None = None
    limits: ReceiverLimits = field(default_factory=ReceiverLimits)
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


SECRET_VARIABLES = {
    "stripe": "STRIPE_WEBHOOK_SECRET",
    "razorpay": "RAZORPAY_WEBHOOK_SECRET",
    "simulated": "PAYSIGHT_SIMULATED_WEBHOOK_SECRET",
}
SOURCES_VARIABLE = "PAYSIGHT_WEBHOOK_SOURCES"
MIN_SECRET_CHARS = 16


def split_secrets(raw: str | None) -> list[str]:
    """A secret variable's value: one secret, or `new,old` during a rotation."""
    return [part.strip() for part in (raw or "").split(",") if part.strip()]


def enabled_secrets(
    enabled: Sequence[str], given: Mapping[str, str | None]
) -> dict[str, list[str]]:
    """The secrets of each enabled source; refuses (naming the variable) an unknown source, an
    enabled source without a secret, and a secret too short to be one."""
    if not enabled:
        raise WebhookConfigError(
            f"no webhook source is enabled: set {SOURCES_VARIABLE} (e.g. 'stripe') and the "
            "source's secret"
        )
    out: dict[str, list[str]] = {}
    for source in enabled:
        if source not in SOURCES:
            raise WebhookConfigError(
                f"{SOURCES_VARIABLE}: unknown webhook source {source!r}; expected {SOURCES}"
            )
        var = SECRET_VARIABLES[source]
        values = split_secrets(given.get(source))
        if not values:
            raise WebhookConfigError(
                f"webhook source {source!r} is enabled but {var} is not set: set it to the "
                "signing secret the gateway shows (or disable the source)"
            )
        short = [v for v in values if len(v) < MIN_SECRET_CHARS]
        if short:
            raise WebhookConfigError(
                f"{var}: a webhook secret must be at least {MIN_SECRET_CHARS} characters"
            )
        out[source] = values
    return out


def _number(env: Mapping[str, str], name: str, default: float, kind: type = float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise WebhookConfigError(f"{name} must be a number, got {raw!r}") from None


def limits_from_env(env: Mapping[str, str]) -> ReceiverLimits:
    d = ReceiverLimits()
    return ReceiverLimits(
        header_timeout_s=_number(env, "PAYSIGHT_WEBHOOK_HEADER_TIMEOUT_S", d.header_timeout_s),
        body_timeout_s=_number(env, "PAYSIGHT_WEBHOOK_BODY_TIMEOUT_S", d.body_timeout_s),
        keep_alive_s=_number(env, "PAYSIGHT_WEBHOOK_KEEP_ALIVE_S", d.keep_alive_s),
        max_connections=int(
            _number(env, "PAYSIGHT_WEBHOOK_MAX_CONNECTIONS", d.max_connections, int)
        ),
        max_json_depth=int(_number(env, "PAYSIGHT_WEBHOOK_MAX_JSON_DEPTH", d.max_json_depth, int)),
    )


def rate_limits(
    sources: Sequence[str], rate: float | None, burst: int | None, invalid_rate: float | None
) -> tuple[dict[str, RateLimit], RateLimit | None]:
    """Per-source limits for signed requests (burst default: one second's worth), and the
    bucket for unsigned or invalid ones (default: the same rate). No rate: no limits."""
    if not rate:
        return {}, None
    burst = burst or max(1, int(rate))
    invalid = invalid_rate or rate
    return {s: RateLimit(rate, burst) for s in sources}, RateLimit(invalid, max(1, int(invalid)))


def rate_limits_from_env(
    env: Mapping[str, str], sources: Sequence[str]
) -> tuple[dict[str, RateLimit], RateLimit | None]:
    """`rate_limits` from PAYSIGHT_WEBHOOK_RATE_PER_S, _BURST and _INVALID_RATE_PER_S."""
    return rate_limits(
        sources,
        _number(env, "PAYSIGHT_WEBHOOK_RATE_PER_S", 0.0),
        int(_number(env, "PAYSIGHT_WEBHOOK_BURST", 0, int)),
        _number(env, "PAYSIGHT_WEBHOOK_INVALID_RATE_PER_S", 0.0),
    )


def config_from_env(landing_dir: Path, env: Mapping[str, str] | None = None) -> WebhookConfig:
    """Build a config from the environment (`python -m ingestion.webhooks`). The enabled
    sources are `PAYSIGHT_WEBHOOK_SOURCES` (comma-separated), or else those whose secret
    variable is set; each needs its secret (a comma-separated `new,old` list during rotation).
    There are no default secrets: a missing one stops start-up with the variable's name."""
    env = os.environ if env is None else env
    listed = [s.strip().lower() for s in env.get(SOURCES_VARIABLE, "").split(",") if s.strip()]
    enabled = listed or [s for s, var in SECRET_VARIABLES.items() if split_secrets(env.get(var))]
    secrets = enabled_secrets(enabled, {s: env.get(v) for s, v in SECRET_VARIABLES.items()})
    limits, invalid = rate_limits_from_env(env, list(secrets))
    group_commit = env.get("PAYSIGHT_WEBHOOK_GROUP_COMMIT", "1").strip() not in ("0", "false")
    return WebhookConfig(
        landing_dir=landing_dir,
        secrets=secrets,
        rate_limits=limits,
        invalid_rate_limit=invalid,
        limits=limits_from_env(env),
        group_commit=group_commit,
    )
