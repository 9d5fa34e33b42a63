"""The simulated gateway: a deterministic, seeded source of Stripe-shaped payment objects.

`charges(start, end)` replays a small subscription business's charge history (monthly renewals,
issuer-specific declines, retries a few days later, UPI/net banking/wallet mix, fees with GST
on fees, T+2 settlement). The same seed always gives the same objects. The same class also
implements the `Gateway` port (see `sim_gateway.SimulatedPort`) with SQLite-backed state.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from simulation.gateway.port import (
    SimulatedPort,
    TimeoutInjector,
    _sid,
    fee_and_tax,
    settlement_time,
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
# Real Stripe decline codes with relative weights; the first group is hard (never retried).
DECLINE_CODES: tuple[tuple[str, float], ...] = (
    ("insufficient_funds", 0.45),
    ("issuer_not_available", 0.15),
    ("processing_error", 0.10),
    ("try_again_later", 0.10),
    ("do_not_honor", 0.08),
    ("expired_card", 0.04),
    ("lost_card", 0.02),
    ("stolen_card", 0.01),
    ("invalid_account", 0.05),
)
HARD_DECLINES = frozenset({"lost_card", "stolen_card", "invalid_account", "expired_card"})
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
    """Deterministic simulated gateway. ``charges(start, end)`` yields Stripe-shaped charges;
    the port methods (`charge`, `refund`, ...) run against `state` (a SQLite path or ":memory:")."""

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

    def charges(self, start: datetime, end: datetime) -> Iterator[dict]:
        """Every charge attempt created in [start, end), in creation order."""
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("start and end must be timezone-aware")
        if end <= start:
            raise ValueError(f"end {end.isoformat()} must be after start {start.isoformat()}")
        events: list[dict] = []
        for cust in self.customers(start):
            rng = random.Random(f"{self.seed}:{cust.customer_id}")
            soft_rate = dict(ISSUERS[cust.method])[cust.issuer]
            churn_month = rng.random() < 0.04
            bill_at = cust.signup
            period = 0
            while bill_at < end:
                invoice_id = _sid("in", self.seed, cust.customer_id, period)
                attempt, at = 1, bill_at
                while at < end and attempt <= 4:
                    failed = rng.random() < soft_rate * (1.6 if attempt == 1 else 1.0)
                    decline = _pick(rng, DECLINE_CODES) if failed else None
                    events.append(self._charge(cust, invoice_id, attempt, at, decline))
                    if not failed or decline in HARD_DECLINES:
                        break
                    attempt += 1
                    at = at + timedelta(days=rng.choice((1, 3, 5)), hours=rng.randrange(0, 12))
                period += 1
                bill_at = _add_month(cust.signup, period, cust.anchor_day)
                if churn_month and rng.random() < 0.25:
                    break
        events.sort(key=lambda c: (c["created"], c["id"]))
        for charge in events:
            if start.timestamp() <= charge["created"] < end.timestamp():
                yield charge

    def _charge(
        self,
        cust: SimulatedCustomer,
        invoice_id: str,
        attempt: int,
        at: datetime,
        decline: str | None,
    ) -> dict:
        charge_id = _sid("ch", self.seed, invoice_id, attempt)
        succeeded = decline is None
        fee, fee_tax = fee_and_tax(cust.amount_minor, cust.method) if succeeded else (0, 0)
        settled_at = settlement_time(at) if succeeded else None
        details: dict = {"type": cust.method}
        if cust.method == "card":
            details["card"] = {
                "network": "visa" if cust.issuer != "sbi" else "rupay",
                "issuer": cust.issuer,
                "funding": "debit",
            }
        elif cust.method == "upi":
            details["upi"] = {"vpa_handle": cust.issuer}
        elif cust.method == "netbanking":
            details["netbanking"] = {"bank": cust.issuer}
        else:
            details["wallet"] = {"type": cust.issuer}
        return {
            "id": charge_id,
            "object": "charge",
            "amount": cust.amount_minor,
            "amount_captured": cust.amount_minor if succeeded else 0,
            "amount_refunded": 0,
            "currency": self.currency.lower(),
            "created": int(at.timestamp()),
            "customer": cust.customer_id,
            "invoice": invoice_id,
            "status": "succeeded" if succeeded else "failed",
            "paid": succeeded,
            "failure_code": decline,
            "outcome": {"type": "authorized" if succeeded else "issuer_declined"},
            "payment_method_details": details,
            "balance_transaction": _sid("txn", charge_id) if succeeded else None,
            "metadata": {
                "attempt_number": str(attempt),
                "plan": cust.plan,
                "fee_minor": str(fee),
                "fee_tax_minor": str(fee_tax),
                "settled_at": settled_at.isoformat() if settled_at else None,
                "settlement_id": (
                    _sid("setl", self.seed, settled_at.date()) if settled_at else None
                ),
            },
            "livemode": False,
        }


def _add_month(signup: datetime, months: int, anchor_day: int) -> datetime:
    month_index = signup.month - 1 + months
    year, month = signup.year + month_index // 12, month_index % 12 + 1
    return signup.replace(year=year, month=month, day=anchor_day)
