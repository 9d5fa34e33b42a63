"""Per-source token bucket driven by the injectable clock."""

from __future__ import annotations

from collections.abc import Callable

from ingestion.webhooks.config import RateLimit


class TokenBucket:
    """Classic token bucket; `allow()` takes one token if available."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float]) -> None:
        self._limit = limit
        self._clock = clock
        self._tokens = float(limit.burst)
        self._last = clock()

    def allow(self) -> bool:
        now = self._clock()
        elapsed = max(0.0, now - self._last)  # a clock stepping back must not mint tokens
        self._last = now
        self._tokens = min(
            float(self._limit.burst), self._tokens + elapsed * self._limit.rate_per_s
        )
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
