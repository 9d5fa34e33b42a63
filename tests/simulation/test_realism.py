"""Realism of the demo world: method mix by segment, seasonality and holidays, churn preceded by
signals, issuer-specific declines, and retry success that depends on time and day of month."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest

from billing_jobs.tax.gst import validate_gstin
from simulation import population as pop
from simulation.calendar_in import holiday, signup_weight
from simulation.gateway.simulated import SimulatedGateway

START = date(2025, 1, 1)
END = pop.at_ist(date(2027, 1, 1), 0)


@pytest.fixture(scope="module")
def profiles() -> list[pop.Profile]:
    days = pop.signup_days(random.Random(5), 4000, START, 730)
    return [pop.make_profile(random.Random(f"5:{i}"), i, d, END) for i, d in enumerate(days)]


def _share(items: list[str]) -> dict[str, float]:
    c = Counter(items)
    return {k: v / len(items) for k, v in c.items()}


def test_payment_method_mix_depends_on_segment(profiles):
    by_seg = {s: _share([p.method for p in profiles if p.segment == s]) for s, _ in pop.SEGMENTS}
    assert max(by_seg["smb"], key=by_seg["smb"].get) == "upi"
    assert max(by_seg["enterprise"], key=by_seg["enterprise"].get) == "netbanking"
    assert by_seg["smb"].get("upi", 0) > 3 * by_seg["enterprise"].get("upi", 0)
    assert by_seg["smb"].get("wallet", 0) > by_seg["mid_market"].get("wallet", 0)
    segments = _share([p.segment for p in profiles])
    assert 0.62 < segments["smb"] < 0.78 and segments["enterprise"] < 0.1


def test_places_of_supply_gstins_and_tax_status(profiles):
    states = Counter(p.state_code for p in profiles)
    assert [s for s, _ in states.most_common(2)] == ["29", "27"]
    status = Counter(p.tax_status for p in profiles)
    assert status["sez"] > 0 and status["export"] > 0
    for p in profiles:
        if p.gstin:
            assert validate_gstin(p.gstin) == p.gstin and p.gstin[:2] == p.state_code
        if p.tax_status == "export":
            assert p.state_code == "96" and p.currency == "USD" and p.gstin is None
        if p.mandate:
            assert p.method in ("upi", "card") and "_mandate_" in p.token


def test_signups_follow_seasons_holidays_and_weekdays():
    days = pop.signup_days(random.Random(9), 60_000, START, 730)
    per_day = Counter(days)

    def weekday_mean(year: int, month: int) -> float:
        ds = [START + timedelta(d) for d in range(730)]
        ds = [d for d in ds if (d.year, d.month) == (year, month) and d.weekday() < 5]
        ds = [d for d in ds if not holiday(d)]
        return sum(per_day[d] for d in ds) / len(ds)

    # Financial-year-end budgets (March) against the festive lull three months before it.
    assert weekday_mean(2026, 3) > 1.4 * weekday_mean(2025, 12)
    assert holiday(date(2025, 1, 26)) == "Republic Day" and holiday(date(2025, 10, 20)) == "Diwali"
    assert signup_weight(date(2025, 10, 20)) < 0.3 * signup_weight(date(2025, 10, 14))
    sat, wed = date(2025, 6, 7), date(2025, 6, 4)
    assert signup_weight(sat) < 0.5 * signup_weight(wed)


def test_churn_is_preceded_by_behavioural_signals(profiles):
    churners = [p for p in profiles if p.intended_churn_at is not None]
    stayers = [p for p in profiles if p.intended_churn_at is None]
    assert len(churners) > 200 and len(stayers) > 1000
    contraction = {"remove_seats", "downgrade", "pause", "revoke_method"}
    with_signal = 0
    for p in churners:
        assert p.story and p.story[-1].kind.startswith("cancel")
        assert all(e.at <= p.intended_churn_at for e in p.story)
        window = [e for e in p.story if e.signal and e.kind in contraction]
        assert all(e.at < p.intended_churn_at for e in window)
        lapsed_card = p.method == "card" and not any(e.kind == "update_method" for e in p.story)
        with_signal += bool(window) or lapsed_card
    assert with_signal / len(churners) > 0.7
    # Contraction among stayers is rare noise, so the signals carry information.
    noise = sum(sum(e.kind in contraction for e in p.story) for p in stayers) / len(stayers)
    signal = sum(sum(e.kind in contraction for e in p.story) for p in churners) / len(churners)
    assert signal > 3 * noise


def _gateway_with_payers(methods: dict[str, list[str]]):
    gw = SimulatedGateway(21, 1, state=":memory:")
    t0 = datetime(2025, 3, 1, 5, tzinfo=UTC)
    payers = []
    for method, issuers in methods.items():
        for issuer in issuers:
            cus = gw.create_customer(name=f"{method}-{issuer}", now=t0)
            tok = (
                f"tok_card_{issuer}_visa_4242_12_2030" if method == "card"
                else f"tok_{method}_{issuer}"
            )  # fmt: skip
            pm = gw.attach_payment_method(cus.gateway_customer_id, tok)
            payers.append((method, issuer, cus.gateway_customer_id, pm.token))
    return gw, payers


def test_decline_rates_differ_by_issuer():
    gw, payers = _gateway_with_payers({"card": ["hdfc", "sbi"], "netbanking": ["HDFC", "SBIN"]})
    at = datetime(2025, 3, 14, 5, tzinfo=UTC)  # mid-month: no salary effect
    failed: Counter[str] = Counter()
    n = 350
    for _method, issuer, cus, pm in payers:
        for i in range(n):
            r = gw.charge(cus, pm, 99_900, "INR", f"inv-{issuer}-{i}-1",
                          metadata={"invoice_id": f"inv-{issuer}-{i}"}, now=at)  # fmt: skip
            failed[issuer] += r.declined
    assert failed["sbi"] > 1.4 * failed["hdfc"]
    assert failed["SBIN"] > 1.4 * failed["HDFC"]


def test_retry_success_depends_on_time_since_failure_and_salary_day():
    gw, payers = _gateway_with_payers(
        {"card": ["hdfc", "icici", "sbi", "axis"], "netbanking": ["SBIN", "UTIB"],
         "wallet": ["paytm"]}
    )  # fmt: skip
    first = datetime(2025, 3, 12, 5, tzinfo=UTC)  # mid-month, far from payday
    failures = []
    for _method, issuer, cus, pm in payers:
        for i in range(300):
            inv = f"r-{issuer}-{i}"
            r = gw.charge(cus, pm, 149_900, "INR", f"{inv}-1", metadata={"invoice_id": inv},
                          now=first)  # fmt: skip
            if r.declined and r.decline_code not in ("lost_card", "stolen_card", "expired_card"):
                failures.append((cus, pm, inv))
    assert len(failures) > 200
    # Same failures, three retry timings (assigned round-robin so the groups are alike).
    timing = {
        "after_2_hours": first + timedelta(hours=2),
        "after_4_days": first + timedelta(days=4),  # 16th: still mid-month
        "on_payday": datetime(2025, 3, 31, 5, tzinfo=UTC),  # last working day of March
    }
    wins: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    for k, (cus, pm, inv) in enumerate(failures):
        name = list(timing)[k % 3]
        r = gw.charge(cus, pm, 149_900, "INR", f"{inv}-2", metadata={"invoice_id": inv},
                      now=timing[name])  # fmt: skip
        wins[name] += r.succeeded
        seen[name] += 1
    rate = {k: wins[k] / seen[k] for k in timing}
    assert rate["after_2_hours"] < rate["after_4_days"] < rate["on_payday"]
    assert rate["on_payday"] - rate["after_2_hours"] > 0.25
