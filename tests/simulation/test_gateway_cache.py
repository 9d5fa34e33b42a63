"""The simulated gateway's next-due cache (one long transaction per simulated day) changes
nothing: the same calls leave exactly the state they leave one transaction per call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from billing_jobs.payments.gateway import GatewayError
from simulation.gateway import port as sim_gateway
from simulation.gateway.simulated import SimulatedGateway

T0 = datetime(2025, 3, 3, 4, 0, tzinfo=UTC)
TOKENS = ["tok_upi_okicici", "tok_card_hdfc_visa_4242_12_2030", "tok_netbanking_HDFC",
          "tok_upi_mandate_oksbi", "tok_card_sbi_mastercard_5555_06_2031"]  # fmt: skip
TABLES = ("sim_customers", "sim_payment_methods", "sim_payments", "sim_refunds", "sim_disputes",
          "sim_balance_txns", "sim_payouts", "sim_events", "sim_idempotency")  # fmt: skip


def _play(gw: SimulatedGateway, cached: bool) -> None:
    """Twelve days of charges, retries, refunds and detaches, advanced at each day's end."""
    customers = []
    for i, tok in enumerate(TOKENS * 3):
        cus = gw.create_customer(email=f"c{i}@example.in", now=T0).gateway_customer_id
        customers.append((cus, gw.attach_payment_method(cus, tok).token))
    paid: list[str] = []
    for day in range(12):
        if cached:
            gw.store.begin(cache=True)
        base = T0 + timedelta(days=day)
        for n, (cus, pm) in enumerate(customers):
            at = base + timedelta(minutes=37 * n)
            if (day + n) % 4 == 0:
                continue
            if day == 5 and n == 3:
                gw.detach_payment_method(pm)
            try:
                r = gw.charge(cus, pm, 49_900 + 100 * n, "INR", f"k-{n}-{day}",
                              metadata={"invoice_id": f"inv-{n}-{day // 3}"}, now=at)  # fmt: skip
            except GatewayError:
                continue
            if r.status.value == "succeeded":
                paid.append(r.gateway_payment_id)  # type: ignore[arg-type]
        if day % 3 == 2 and paid:
            gw.refund(paid[len(paid) // 2], 10_000, idempotency_key=f"re-{day}", now=base)
        if paid:
            gw.fetch_payment(paid[0], now=base + timedelta(hours=20))
        gw.advance(base + timedelta(hours=23, minutes=59))
        if cached:
            gw.store.commit()
    gw.advance(T0 + timedelta(days=60))


def _state(path: Path) -> dict[str, list[tuple]]:
    gw = SimulatedGateway(5, 10, state=path)
    try:
        return {
            t: [tuple(r) for r in gw.store.all(f"select * from {t} order by 1")] for t in TABLES
        }
    finally:
        gw.store.close()


def test_cached_day_transactions_leave_the_same_state(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sim_gateway, "DISPUTE_RATE", 0.3)  # so disputes fall due too
    for name, cached in (("plain", False), ("cached", True)):
        gw = SimulatedGateway(5, 10, state=tmp_path / f"{name}.sqlite")
        _play(gw, cached)
        gw.store.close()
    plain, cached = _state(tmp_path / "plain.sqlite"), _state(tmp_path / "cached.sqlite")
    for kind in ("sim_payments", "sim_disputes", "sim_refunds", "sim_payouts", "sim_events"):
        assert plain[kind], f"the scenario made no {kind}"
    assert {r[7] for r in plain["sim_payments"]} >= {"succeeded", "failed"}
    assert plain == cached


def test_cache_is_off_outside_a_cached_transaction(tmp_path: Path) -> None:
    gw = SimulatedGateway(5, 10, state=tmp_path / "g.sqlite")
    assert gw.store.cache_ok() is None
    gw.store.begin()
    assert gw.store.cache_ok() is None
    gw.store.rollback()
    gw.store.begin(cache=True)
    serial = gw.store.cache_ok()
    assert serial is not None
    gw.store.commit()
    assert gw.store.cache_ok() is None
    gw.store.begin(cache=True)
    assert gw.store.cache_ok() == serial + 1
    gw.store.rollback()
    with pytest.raises(GatewayError):
        gw.advance()  # no time given: refused before anything is read
