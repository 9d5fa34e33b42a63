"""Network retries for the gateway adapters: exponential backoff with jitter, `Retry-After` honoured.

Both SDKs talk HTTP through `requests`, so one urllib3 `Retry` mounted on the session serves
both. Idempotent by construction: a read (GET, DELETE) is retried after a timeout, a dropped
connection, 429 or 5xx; a write (POST) only when the server provably did not act on it: the
connection was refused before the request went out, or the server answered 429. A POST that
timed out or got a 5xx is not sent again here: its outcome is unknown and the caller resolves it
by asking the gateway (the attempt stays `unknown`), never by charging again.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: `attempts` retries after the first try, sleeping
    `backoff * 2**(n-1)` plus up to `jitter` seconds (at most `max_delay`), or what the server's
    `Retry-After` asks for when it says so (capped at `max_delay`, so a hostile header cannot
    stall a run)."""

    attempts: int = 3
    backoff: float = 0.5
    jitter: float = 0.25
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 0:
            raise ValueError(f"retry attempts must be >= 0, got {self.attempts}")
        if self.backoff < 0 or self.jitter < 0 or self.max_delay <= 0:
            raise ValueError("retry backoff and jitter must be >= 0 and max_delay > 0")


class _GatewayRetry(Retry):
    """urllib3's Retry, except that 429 is retried for writes too (the server refused to act),
    the first retry backs off as well, and a malformed `Retry-After` falls back to backoff."""

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if status_code == 429 and self.total:
            return True
        return super().is_retry(method, status_code, has_retry_after)

    def get_retry_after(self, response) -> float | None:  # type: ignore[no-untyped-def]
        try:
            return super().get_retry_after(response)
        except InvalidHeader:
            return None

    def get_backoff_time(self) -> float:
        tries = len(self.history)
        if tries == 0:
            return 0.0
        delay = self.backoff_factor * (2 ** (tries - 1)) + random.random() * self.backoff_jitter
        return float(min(self.backoff_max, delay))


def retry_strategy(policy: RetryPolicy) -> Retry:
    return _GatewayRetry(
        total=policy.attempts,
        connect=policy.attempts,  # refused before sending: safe for every method
        read=policy.attempts,  # only for READ_METHODS (urllib3 checks allowed_methods)
        status=policy.attempts,
        other=0,
        allowed_methods=READ_METHODS,
        status_forcelist=RETRY_STATUSES,
        backoff_factor=policy.backoff,
        backoff_jitter=policy.jitter,
        backoff_max=policy.max_delay,
        retry_after_max=int(policy.max_delay),
        respect_retry_after_header=True,
        raise_on_status=False,  # the last answer reaches the SDK, which raises its own error
    )


def retrying_session(
    policy: RetryPolicy, session: requests.Session | None = None
) -> requests.Session:
    """A `requests.Session` (new, or the one given) that retries as `policy` says."""
    session = session or requests.Session()
    adapter = HTTPAdapter(max_retries=retry_strategy(policy))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
