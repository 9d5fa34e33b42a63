"""Dunning state machine: defaults, overrides, retry alignment, catch-up and idempotency."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing_jobs.payments.dunning import (
    DunningConfigError,
    DunningError,
    DunningInvoice,
    DunningStatus,
    dunning_actions,
    load_config,
    start_dunning,
)
from billing_jobs.payments.retries import ExponentialPolicy, RetryContext, planned_schedule

T0 = datetime(2026, 6, 2, 9, 0, tzinfo=UTC)
INV = DunningInvoice("in_1", "cus_1", 49_900, "INR")


def run_daily(state, days, cfg=None, retry_times=(), invoice=INV):
    notes = []
    for d in range(days + 1):
        res = dunning_actions(state, invoice, T0 + timedelta(days=d, hours=1), cfg, retry_times)
        state = res.state
        notes += res.notifications
    return state, notes


def test_defaults_remind_1_3_7_restrict_14_cancel_21():
    cfg = load_config()
    state, notes = run_daily(start_dunning(INV, T0), 30, cfg)
    assert [(n.kind, (n.due_at - T0).days) for n in notes] == [
        ("remind", 1), ("remind", 3), ("remind", 7), ("restrict", 14), ("cancel", 21),
    ]  # fmt: skip
    assert state.status is DunningStatus.CANCELED
    assert notes[0].template_key == "dunning.reminder.first"
    assert all(
        (n.customer_id, n.invoice_id, n.amount_minor) == ("cus_1", "in_1", 49_900) for n in notes
    )
    # closed: nothing more, ever
    assert dunning_actions(state, INV, T0 + timedelta(days=90), cfg).notifications == ()


def test_nothing_before_day_one_and_catch_up_after_missed_runs():
    state = start_dunning(INV, T0)
    assert dunning_actions(state, INV, T0 + timedelta(hours=23)).notifications == ()
    res = dunning_actions(state, INV, T0 + timedelta(days=8))
    assert [n.kind for n in res.notifications] == ["remind", "remind", "remind"]
    again = dunning_actions(res.state, INV, T0 + timedelta(days=8))
    assert again.notifications == ()


def test_payment_recovers_and_closes():
    state, _ = run_daily(start_dunning(INV, T0), 4)
    res = dunning_actions(
        state, DunningInvoice("in_1", "cus_1", 49_900, "INR", paid=True), T0 + timedelta(days=5)
    )
    assert res.state.status is DunningStatus.RECOVERED
    assert [n.kind for n in res.notifications] == ["recovered"]


def test_customer_override_and_mark_unpaid():
    cfg = load_config(
        text="""
final_action: cancel
steps:
  - {day: 1, action: remind, template: r1}
  - {day: 10, action: final, template: closed}
customer_overrides:
  cus_vip:
    final_action: mark_unpaid
    steps:
      - {day: 5, action: remind, template: vip.r}
      - {day: 30, action: final, template: vip.closed}
"""
    )
    vip = DunningInvoice("in_9", "cus_vip", 100, "INR")
    state, notes = run_daily(start_dunning(vip, T0), 40, cfg, invoice=vip)
    assert [(n.kind, n.template_key) for n in notes] == [
        ("remind", "vip.r"),
        ("mark_unpaid", "vip.closed"),
    ]
    assert state.status is DunningStatus.UNPAID
    _, notes = run_daily(start_dunning(INV, T0), 40, cfg)
    assert [n.kind for n in notes] == ["remind", "cancel"]


def test_aligned_with_retry_schedule():
    ctx = RetryContext("in_1", "stripe", "insufficient_funds", T0, T0, 1, 49_900, "INR")
    retries = [d.at for d in planned_schedule(ExponentialPolicy(), ctx)]
    cfg = load_config()
    _, notes = run_daily(start_dunning(INV, T0), 30, cfg, retries)
    for n in notes:
        upcoming = [t for t in retries if t > n.due_at]
        assert n.next_retry_at == (upcoming[0] if upcoming else None)
    # a retry 5 hours after the restriction step holds the restriction until it has run
    hold = [T0 + timedelta(days=14, hours=5)]
    state, notes = run_daily(start_dunning(INV, T0), 14, cfg, hold)
    assert [n.kind for n in notes] == ["remind"] * 3 and state.status is DunningStatus.ACTIVE
    res = dunning_actions(state, INV, T0 + timedelta(days=17), cfg, hold)
    assert [n.kind for n in res.notifications] == ["restrict"]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("steps: []", "non-empty"),
        (
            "steps: [{day: 3, action: remind, template: a}, {day: 1, action: remind, template: b}]",
            "increasing",
        ),
        ("steps: [{day: 1, action: shout, template: a}]", "shout"),
        (
            "steps: [{day: 1, action: final, template: a}, {day: 2, action: remind, template: b}]",
            "last step",
        ),
        ("steps: [{day: 1, action: remind}]", "exactly"),
        ("steps: [{day: -1, action: remind, template: a}]", "non-negative"),
        ("final_action: delete\nsteps: [{day: 1, action: remind, template: a}]", "final_action"),
        ("colour: red\nsteps: [{day: 1, action: remind, template: a}]", "unknown keys"),
        (
            "customer_overrides: {c: {steps: []}}\nsteps: [{day: 1, action: remind, template: a}]",
            "override",
        ),
        ("steps: [", "YAML"),
        ("- 1", "mapping"),
    ],
)
def test_bad_config_rejected(text, match):
    with pytest.raises(DunningConfigError, match=match):
        load_config(text=text)


def test_bad_input_rejected():
    with pytest.raises(DunningError):
        start_dunning(INV, datetime(2026, 1, 1))
    with pytest.raises(DunningError):
        dunning_actions(start_dunning(INV, T0), DunningInvoice("in_2", "cus_1", 1, "INR"), T0)


@settings(max_examples=60, deadline=None)
@given(gaps=st.lists(st.integers(1, 240), min_size=1, max_size=30))
def test_any_run_cadence_gives_each_step_once_in_order(gaps):
    cfg = load_config()
    state, notes, t = start_dunning(INV, T0), [], T0
    for g in gaps:
        t += timedelta(hours=g)
        res = dunning_actions(state, INV, t, cfg)
        state, notes = res.state, notes + list(res.notifications)
    once = dunning_actions(start_dunning(INV, T0), INV, t, cfg).notifications
    assert notes == list(once)
    assert [n.due_at for n in notes] == sorted(n.due_at for n in notes)
    assert all(n.due_at <= t for n in notes)
