"""Retry policies: examples plus hypothesis properties (window, budget, hard declines, monotone)."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing_jobs.payments.declines import DECLINE_TABLE, DeclineClass, classify
from billing_jobs.payments.retries import (
    MANDATE_AFA_LIMIT_MINOR,
    ExponentialPolicy,
    FixedPolicy,
    RetryContext,
    RetryPolicyError,
    SmartPolicy,
    planned_schedule,
)

T0 = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)


def ctx(**kw) -> RetryContext:
    base = dict(
        key="in_1", gateway="stripe", decline_code="insufficient_funds", first_failed_at=T0,
        last_failed_at=T0, attempts_made=1, amount_minor=49_900, currency="INR",
    )  # fmt: skip
    base.update(kw)
    return RetryContext(**base)


def test_fixed_is_kill_bill_8_8_8():
    plan = planned_schedule(FixedPolicy(), ctx())
    assert [d.at for d in plan] == [T0 + timedelta(days=8 * i) for i in (1, 2, 3)]


def test_exponential_grows_with_jitter_and_is_deterministic():
    p = ExponentialPolicy(base=timedelta(days=1), factor=2, jitter=0.1)
    plan = planned_schedule(p, ctx())
    gaps = [
        (b.at - a).total_seconds() / 86400
        for a, b in zip([T0] + [d.at for d in plan], [d for d in plan], strict=False)
    ]
    assert gaps[0] == pytest.approx(1, rel=0.11) and gaps[1] == pytest.approx(2, rel=0.11)
    assert len(plan) <= 7
    assert planned_schedule(p, ctx()) == plan


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(max_attempts=9),
        dict(max_attempts=0),
        dict(window=timedelta(days=61)),
        dict(jitter=1.0),
        dict(factor=0.5),
    ],
)
def test_policy_bounds_are_enforced(kwargs):
    with pytest.raises(RetryPolicyError):
        ExponentialPolicy(**kwargs)


def test_hard_and_action_declines_stop():
    assert not FixedPolicy().next_attempt(ctx(decline_code="stolen_card")).retry
    d = ExponentialPolicy().next_attempt(ctx(decline_code="authentication_required"))
    assert not d.retry and "customer must act" in d.reason


def test_mandate_notice_24h_before_and_afa_limit():
    p = ExponentialPolicy(base=timedelta(hours=2), jitter=0)
    d = p.next_attempt(ctx(mandate=True))
    assert d.at == T0 + timedelta(hours=24)  # pushed out so the notice can precede it
    assert d.notify_at == d.at - timedelta(hours=24) and d.notify_at >= T0
    d = FixedPolicy().next_attempt(ctx(mandate=True))
    assert d.notify_at == d.at - timedelta(hours=24)
    over = ctx(mandate=True, amount_minor=MANDATE_AFA_LIMIT_MINOR + 1)
    assert not ExponentialPolicy().next_attempt(over).retry
    assert (
        ExponentialPolicy()
        .next_attempt(ctx(mandate=True, amount_minor=MANDATE_AFA_LIMIT_MINOR))
        .retry
    )


def test_smart_picks_the_best_scored_time():
    def payday_scorer(features, offset_hours):
        return 0.9 if features["day_of_month"] == 15 else 0.1

    d = SmartPolicy(scorer=payday_scorer).next_attempt(ctx())
    assert d.at.day == 15 and d.at > T0


def test_smart_without_scorer_is_exponential():
    c = ctx()
    assert SmartPolicy().next_attempt(c).at == ExponentialPolicy().next_attempt(c).at


def test_smart_rejects_non_probabilities():
    with pytest.raises(RetryPolicyError, match="probability"):
        SmartPolicy(scorer=lambda f, h: 3.0).next_attempt(ctx())


def test_context_validation():
    with pytest.raises(RetryPolicyError):
        ctx(first_failed_at=datetime(2026, 1, 1))
    with pytest.raises(RetryPolicyError):
        ctx(attempts_made=0)


codes = st.sampled_from([*sorted({c for _, c in DECLINE_TABLE}), None, "brand_new_code"])


@st.composite
def policies(draw):
    kind = draw(st.sampled_from(["fixed", "exp", "smart"]))
    window = timedelta(days=draw(st.integers(1, 60)))
    if kind == "fixed":
        days = tuple(draw(st.lists(st.integers(1, 20), min_size=1, max_size=7)))
        return FixedPolicy(days=days, window=window)
    exp = ExponentialPolicy(
        base=timedelta(hours=draw(st.integers(1, 96))),
        factor=draw(st.floats(1, 3)),
        jitter=draw(st.floats(0, 0.9)),
        max_attempts=draw(st.integers(1, 8)),
        window=window,
    )
    if kind == "exp":
        return exp
    bias = draw(st.integers(0, 30))
    return SmartPolicy(
        scorer=lambda f, h: 1 / (1 + abs(f["day_of_month"] - bias) + h / 1000),
        max_attempts=exp.max_attempts,
        window=window,
    )


@settings(max_examples=150, deadline=None)
@given(
    policy=policies(),
    code=codes,
    mandate=st.booleans(),
    amount=st.integers(100, 3_000_000),
    key=st.text(min_size=1, max_size=8),
)
def test_schedule_properties(policy, code, mandate, amount, key):
    c = ctx(key=key, decline_code=code, mandate=mandate, amount_minor=amount)
    plan = planned_schedule(policy, c)
    times = [d.at for d in plan]
    assert all(t <= T0 + policy.window for t in times)  # never beyond the window
    assert 1 + len(plan) <= policy.max_attempts <= 8  # never more than max attempts
    if classify("stripe", code) is not DeclineClass.SOFT:
        assert plan == []  # hard / action declines never retried
    assert all(b > a for a, b in zip([T0, *times], times, strict=False))  # strictly increasing
    if mandate:
        assert amount <= 1_500_000 or plan == []
        for prev, d in zip([T0, *times], plan, strict=False):
            assert d.notify_at is not None and d.at - d.notify_at >= timedelta(hours=24)
            assert d.notify_at >= prev  # the notice is sent after the failure it follows
