"""Fraud bursts: a taken-over account charges fresh cards at odd hours, fast, for far more than
its plan costs. The charges reach the gateway like any other; only ground truth tags them."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from billing_jobs.payments.gateway import GatewayError
from simulation.gateway.simulated import SimulatedGateway
from simulation.population import ISSUERS, at_ist, card_token, pick


@dataclass(frozen=True)
class FraudCharge:
    burst_id: str
    gateway_payment_id: str
    gateway_customer_id: str
    customer_id: int
    at: datetime
    amount_minor: int
    currency: str
    status: str
    plan_price_minor: int


def burst_days(rng: random.Random, start: date, days: int) -> list[date]:
    """About one burst every 45 days, at least one in any world longer than two weeks."""
    n = max(1 if days > 14 else 0, round(days / 45))
    return sorted({start + timedelta(days=rng.randrange(7, max(8, days))) for _ in range(n)})


def run_burst(
    rng: random.Random,
    gw: SimulatedGateway,
    burst_id: str,
    day: date,
    victims: list[tuple[int, str, int, str]],
) -> list[FraudCharge]:
    """victims: (ledger customer id, gateway customer id, monthly plan price minor, currency)."""
    out: list[FraudCharge] = []
    t = at_ist(day, 1) + timedelta(minutes=rng.randrange(180))  # 01:00-04:00 IST
    for cid, gcid, price, currency in victims:
        exp = date(day.year + 2, rng.randint(1, 12), 1)
        for k in range(rng.randint(1, 3)):  # new instruments, never seen on this account
            issuer = pick(rng, ISSUERS["card"])
            try:
                pm = gw.attach_payment_method(gcid, card_token(rng, issuer, exp))
            except GatewayError:
                continue
            for j in range(rng.randint(2, 5)):
                t += timedelta(seconds=rng.randint(20, 240))  # high velocity
                amount = price * rng.randint(5, 25) + rng.randrange(100) * 100
                # A neutral key: nothing the gateway stores may give the fraud away.
                key = "chk_" + hashlib.sha256(f"{burst_id}|{cid}|{k}|{j}".encode()).hexdigest()[:24]
                res = gw.charge(gcid, pm.token, amount, currency, key, off_session=False,
                                metadata={"description": "one-time purchase"}, now=t)  # fmt: skip
                assert res.gateway_payment_id is not None
                out.append(FraudCharge(burst_id, res.gateway_payment_id, gcid, cid, t, amount,
                                       currency, res.status.value, price))  # fmt: skip
    return out
