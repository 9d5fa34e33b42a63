"""Retry schedules for failed payments: fixed (Kill Bill 8/8/8 days), exponential with jitter, smart.

A policy answers "when, if ever, should the next attempt run?" for a `RetryContext`. India mandates
add a pre-debit notification >= 24 h before each debit and forbid silent debits above ₹15,000.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from billing_jobs.payments.declines import DeclineClass, classify

MAX_ATTEMPTS_CAP = 8  # total charge attempts, the first one included
WINDOW_CAP = timedelta(days=60)
PRE_DEBIT_NOTICE = timedelta(hours=24)
MANDATE_AFA_LIMIT_MINOR = 1_500_000  # ₹15,000 in paise: above it each debit needs authentication

Scorer = Callable[[Mapping[str, Any], float], float]


class BatchScorer(Protocol):
    """A scorer that can also rate many candidates in one call (a model scores a frame at once
    much faster than row by row); `SmartPolicy` uses `score_batch` when the scorer has it."""

    def __call__(self, features: Mapping[str, Any], offset_hours: float) -> float: ...

    def score_batch(
        self, rows: Sequence[Mapping[str, Any]], offsets_hours: Sequence[float]
    ) -> Sequence[float]: ...


class RetryPolicyError(ValueError):
    """A retry policy was configured outside the allowed bounds."""


@dataclass(frozen=True)
class RetryContext:
    """What is known after a failed attempt. `attempts_made` counts the original charge."""

    key: str  # stable id of the thing being collected (invoice id) -> deterministic jitter
    gateway: str
    decline_code: str | None
    first_failed_at: datetime
    last_failed_at: datetime
    attempts_made: int
    amount_minor: int
    currency: str
    mandate: bool = False  # UPI AutoPay / card e-mandate (RBI rules apply)
    features: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.first_failed_at.tzinfo is None or self.last_failed_at.tzinfo is None:
            raise RetryPolicyError("retry times must be timezone-aware")
        if self.attempts_made < 1:
            raise RetryPolicyError(f"attempts_made must be >= 1, got {self.attempts_made}")
        if self.last_failed_at < self.first_failed_at:
            raise RetryPolicyError("last_failed_at is before first_failed_at")


@dataclass(frozen=True)
class RetryDecision:
    """`at` None means stop retrying; `notify_at` is the pre-debit notification time (mandates)."""

    at: datetime | None
    reason: str
    notify_at: datetime | None = None

    @property
    def retry(self) -> bool:
        return self.at is not None


class RetryPolicy(Protocol):
    name: str
    max_attempts: int
    window: timedelta

    def next_attempt(self, ctx: RetryContext) -> RetryDecision: ...


def _check_budget(max_attempts: int, window: timedelta) -> None:
    if not 1 <= max_attempts <= MAX_ATTEMPTS_CAP:
        raise RetryPolicyError(f"max_attempts must be in 1..{MAX_ATTEMPTS_CAP}, got {max_attempts}")
    if not timedelta(0) < window <= WINDOW_CAP:
        raise RetryPolicyError(f"window must be within (0, {WINDOW_CAP.days} days], got {window}")


def _gate(policy: RetryPolicy, ctx: RetryContext) -> RetryDecision | None:
    """Rules every policy shares; a decision here means "stop"."""
    cls = classify(ctx.gateway, ctx.decline_code)
    if cls is DeclineClass.HARD:
        return RetryDecision(None, f"hard decline {ctx.decline_code}: never retried")
    if cls is DeclineClass.ACTION:
        return RetryDecision(None, f"{ctx.decline_code}: the customer must act")
    if ctx.mandate and ctx.amount_minor > MANDATE_AFA_LIMIT_MINOR:
        return RetryDecision(None, "mandate debit above ₹15,000 needs customer authentication")
    if ctx.attempts_made >= policy.max_attempts:
        return RetryDecision(None, f"attempt budget of {policy.max_attempts} used")
    return None


def _finish(policy: RetryPolicy, ctx: RetryContext, at: datetime, why: str) -> RetryDecision:
    notify_at = None
    if ctx.mandate:
        # RBI: the customer is notified at least 24 h before every mandate debit. The earliest
        # notice we can send is right after the failure, so the debit moves if needed.
        at = max(at, ctx.last_failed_at + PRE_DEBIT_NOTICE)
        notify_at = at - PRE_DEBIT_NOTICE
    if at > ctx.first_failed_at + policy.window:
        return RetryDecision(
            None, f"next attempt would fall outside the {policy.window.days}-day window"
        )
    return RetryDecision(at, why, notify_at)


def _unit(key: str, attempt: int) -> float:
    """A deterministic number in [0, 1) per (key, attempt): jitter without hidden RNG state."""
    digest = hashlib.sha256(f"{key}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class FixedPolicy:
    """Kill Bill's default: retry 8, 8 and 8 days after each failure."""

    days: tuple[int, ...] = (8, 8, 8)
    window: timedelta = WINDOW_CAP
    name: str = "fixed"

    def __post_init__(self) -> None:
        if not self.days or any(d <= 0 for d in self.days):
            raise RetryPolicyError(f"fixed retry days must be positive, got {self.days}")
        _check_budget(self.max_attempts, self.window)

    @property
    def max_attempts(self) -> int:
        return 1 + len(self.days)

    def next_attempt(self, ctx: RetryContext) -> RetryDecision:
        if stop := _gate(self, ctx):
            return stop
        gap = timedelta(days=self.days[ctx.attempts_made - 1])
        return _finish(self, ctx, ctx.last_failed_at + gap, f"fixed +{gap.days}d")


@dataclass(frozen=True)
class ExponentialPolicy:
    """delay_n = base * factor^(n-1), scaled by a deterministic jitter in [1 - j, 1 + j]."""

    base: timedelta = timedelta(days=1)
    factor: float = 2.0
    jitter: float = 0.2
    max_attempts: int = MAX_ATTEMPTS_CAP
    window: timedelta = WINDOW_CAP
    name: str = "exponential"

    def __post_init__(self) -> None:
        if self.base <= timedelta(0):
            raise RetryPolicyError(f"base delay must be positive, got {self.base}")
        if self.factor < 1:
            raise RetryPolicyError(f"factor must be >= 1, got {self.factor}")
        if not 0 <= self.jitter < 1:
            raise RetryPolicyError(f"jitter must be in [0, 1), got {self.jitter}")
        _check_budget(self.max_attempts, self.window)

    def delay(self, key: str, attempts_made: int) -> timedelta:
        scale = self.factor ** (attempts_made - 1)
        wobble = 1 + self.jitter * (2 * _unit(key, attempts_made) - 1)
        return timedelta(seconds=self.base.total_seconds() * scale * wobble)

    def next_attempt(self, ctx: RetryContext) -> RetryDecision:
        if stop := _gate(self, ctx):
            return stop
        gap = self.delay(ctx.key, ctx.attempts_made)
        return _finish(self, ctx, ctx.last_failed_at + gap, f"exponential +{gap}")


def candidate_features(ctx: RetryContext, at: datetime) -> dict[str, Any]:
    """Features a scorer sees for one candidate time (plus whatever the caller put in ctx)."""
    return {
        **ctx.features,
        "gateway": ctx.gateway,
        "decline_code": ctx.decline_code,
        "attempt_number": ctx.attempts_made + 1,
        "amount_minor": ctx.amount_minor,
        "hours_since_first_failure": (at - ctx.first_failed_at).total_seconds() / 3600,
        "hours_since_last_failure": (at - ctx.last_failed_at).total_seconds() / 3600,
        "day_of_month": at.day,
        "weekday": at.weekday(),
        "hour": at.hour,
        # The instants themselves, so a scorer can derive what it needs (e.g. the failure's
        # local hour and day of month, which a retry-timing model is trained on).
        "retry_at": at,
        "last_failed_at": ctx.last_failed_at,
    }


@dataclass(frozen=True)
class SmartPolicy:
    """Pick the candidate time with the highest predicted success, inside the same budget.

    Candidates are every `step` from `min_gap` up to `max_horizon` (never past the window); the
    attempt budget is the same as the other policies'. Without a scorer it behaves exactly like
    `fallback`.
    """

    scorer: Scorer | BatchScorer | None = None
    scorer_name: str | None = None  # e.g. "retry_timing v3", shown in each decision's reason
    fallback: ExponentialPolicy = field(default_factory=ExponentialPolicy)
    min_gap: timedelta = timedelta(hours=12)
    step: timedelta = timedelta(hours=6)
    max_horizon: timedelta = timedelta(days=15)
    max_attempts: int = MAX_ATTEMPTS_CAP
    window: timedelta = WINDOW_CAP
    name: str = "smart"

    def __post_init__(self) -> None:
        _check_budget(self.max_attempts, self.window)
        if self.step <= timedelta(0) or self.min_gap <= timedelta(0):
            raise RetryPolicyError("step and min_gap must be positive")

    def next_attempt(self, ctx: RetryContext) -> RetryDecision:
        if stop := _gate(self, ctx):
            return stop
        if self.scorer is None:
            return replace(
                self.fallback, max_attempts=self.max_attempts, window=self.window
            ).next_attempt(ctx)
        start = ctx.last_failed_at + self.min_gap
        if ctx.mandate:
            start = max(start, ctx.last_failed_at + PRE_DEBIT_NOTICE)
        end_of_window = ctx.first_failed_at + self.window
        horizon = min(self.max_horizon, end_of_window - ctx.last_failed_at)
        candidates: list[datetime] = []
        at = start
        while at <= ctx.last_failed_at + max(horizon, self.min_gap) and at <= end_of_window:
            candidates.append(at)
            at += self.step
        if not candidates:
            return RetryDecision(None, "no candidate time left inside the window")
        rows = [candidate_features(ctx, at) for at in candidates]
        offsets = [(at - ctx.last_failed_at).total_seconds() / 3600 for at in candidates]
        batch = getattr(self.scorer, "score_batch", None)
        if callable(batch):
            scores = [float(p) for p in batch(rows, offsets)]
            if len(scores) != len(candidates):
                raise RetryPolicyError(
                    f"scorer returned {len(scores)} scores for {len(candidates)} candidates"
                )
        else:
            scores = [float(self.scorer(row, off)) for row, off in zip(rows, offsets, strict=True)]
        best_at, best_p = None, -1.0
        for at, p in zip(candidates, scores, strict=True):
            if not 0.0 <= p <= 1.0:
                raise RetryPolicyError(f"scorer returned {p}, not a probability")
            if p > best_p:  # strict: ties keep the earliest time
                best_at, best_p = at, p
        assert best_at is not None
        label = f" {self.scorer_name}" if self.scorer_name else ""
        return _finish(self, ctx, best_at, f"smart{label} p={best_p:.3f}")


def planned_schedule(policy: RetryPolicy, ctx: RetryContext) -> list[RetryDecision]:
    """The whole schedule if every retry fails with the same code (for dunning and previews)."""
    out: list[RetryDecision] = []
    while True:
        decision = policy.next_attempt(ctx)
        if not decision.retry:
            return out
        out.append(decision)
        assert decision.at is not None
        ctx = replace(ctx, attempts_made=ctx.attempts_made + 1, last_failed_at=decision.at)
