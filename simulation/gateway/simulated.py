"""The simulated gateway: the `Gateway` port (`simulation.gateway.port.SimulatedPort`) with
SQLite-backed state, plus a seeded customer population (`customers`) for benchmarks. Its
payments reach the warehouse through the port listings like any gateway's.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from simulation.gateway.port import (
    SimulatedPort,
    TimeoutInjector,
    _sid,
)

# (method, share of customers)
METHOD_MIX: tuple[tuple[str, float], ...] = (
    ("card", 0.46),
    ("upi", 0.34),
    ("netbanking", 0.12),
    ("wallet", 0.08),
)
# Issuers/banks and their soft-decline propensity; one weak issuer makes the data realistic.
ISSUERS: dict[str, tuple[tuple[str, float], ...]] = {
    "card": (("hdfc", 0.06), ("icici", 0.07), ("sbi", 0.12), ("axis", 0.08), ("kotak", 0.07)),
    "upi": (("okhdfcbank", 0.05), ("okicici", 0.06), ("oksbi", 0.10), ("ybl", 0.07)),
    "netbanking": (("HDFC", 0.05), ("ICIC", 0.06), ("SBIN", 0.11), ("UTIB", 0.07)),
    "wallet": (("paytm", 0.05), ("phonepe", 0.05), ("amazonpay", 0.06)),
}
PLAN_PRICES_MINOR: tuple[tuple[str, int, float], ...] = (
    ("starter", 49_900, 0.55),
    ("growth", 149_900, 0.33),
    ("scale", 499_900, 0.12),
)


@dataclass(frozen=True)
class SimulatedCustomer:
    customer_id: str
    method: str
    issuer: str
    plan: str
    amount_minor: int
    anchor_day: int
    signup: datetime


def _pick(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    names = [n for n, _ in weighted]
    weights = [w for _, w in weighted]
    return rng.choices(names, weights=weights, k=1)[0]


class SimulatedGateway(SimulatedPort):
    """Deterministic simulated gateway: the port methods (`charge`, `refund`, ...) run against
    `state` (a SQLite path or ":memory:"); `customers` is the seeded population."""

    name = "simulated"

    def __init__(
        self,
        seed: int = 42,
        customers: int = 600,
        currency: str = "INR",
        *,
        state: str | Path = ":memory:",
        webhook_secret: str | None = None,
        clock: Callable[[], datetime] | None = None,
        timeouts: TimeoutInjector | None = None,
    ) -> None:
        if customers <= 0:
            raise ValueError(f"customers must be positive, got {customers}")
        self.seed = seed
        self.currency = currency
        self.n_customers = customers
        self._init_port(state, webhook_secret, clock, timeouts)

    def customers(self, start: datetime) -> list[SimulatedCustomer]:
        rng = random.Random(f"{self.seed}:customers")
        out = []
        for i in range(self.n_customers):
            method = _pick(rng, METHOD_MIX)
            issuer = rng.choice([n for n, _ in ISSUERS[method]])
            plan = rng.choices(
                [p for p, _, _ in PLAN_PRICES_MINOR], [w for _, _, w in PLAN_PRICES_MINOR]
            )[0]
            amount = next(a for p, a, _ in PLAN_PRICES_MINOR if p == plan)
            signup = start + timedelta(days=rng.randrange(0, 60), seconds=rng.randrange(86_400))
            out.append(
                SimulatedCustomer(
                    customer_id=_sid("cus", self.seed, i),
                    method=method,
                    issuer=issuer,
                    plan=plan,
                    amount_minor=amount,
                    anchor_day=min(signup.day, 28),
                    signup=signup,
                )
            )
        return out


def _add_month(signup: datetime, months: int, anchor_day: int) -> datetime:
    month_index = signup.month - 1 + months
    year, month = signup.year + month_index // 12, month_index % 12 + 1
    return signup.replace(year=year, month=month, day=anchor_day)
