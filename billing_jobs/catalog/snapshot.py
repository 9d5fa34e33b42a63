"""An in-memory read of the catalog (plans, prices, coupons) and supplier for one billing run."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlalchemy import Connection, select

from billing_jobs.catalog.pricing import PricingModel, Tier, amount_for_quantity
from billing_jobs.errors import NotFoundError, ValidationError
from billing_jobs.ledger import schema as s


@dataclass(frozen=True, slots=True)
class PriceInfo:
    currency: str
    unit_minor: int | None
    tiers: tuple[Tier, ...]


@dataclass(frozen=True, slots=True)
class PlanInfo:
    id: int
    code: str
    version: int
    name: str
    sac: str
    interval: str
    interval_count: int
    trial_days: int
    pricing_model: str
    is_addon: bool
    is_current: bool
    prices: dict[str, PriceInfo]

    def amount(self, currency: str, quantity: int) -> int:
        """Price of `quantity` units for one period, in minor units."""
        price = self.prices.get(currency)
        if price is None:
            raise ValidationError(
                f"plan {self.code!r} v{self.version} has no {currency} price "
                f"(it is priced in {', '.join(sorted(self.prices))})"
            )
        return amount_for_quantity(
            PricingModel(self.pricing_model), quantity, price.unit_minor, price.tiers
        )


@dataclass(frozen=True, slots=True)
class CouponInfo:
    id: int
    code: str
    percent_off_bp: int | None
    amount_off_minor: int | None
    currency: str | None
    duration: str
    duration_in_periods: int | None


@dataclass
class CatalogSnapshot:
    """Plans by id (every version), current plan ids by code, coupons, supplier settings."""

    plans: dict[int, PlanInfo] = field(default_factory=dict)
    current: dict[str, int] = field(default_factory=dict)
    coupons: dict[int, CouponInfo] = field(default_factory=dict)
    coupon_codes: dict[str, int] = field(default_factory=dict)
    supplier_gstin: str | None = None
    supplier_name: str = ""
    invoice_prefix: str = "INV"

    def plan(self, plan_id: int) -> PlanInfo:
        return self.plans[plan_id]

    def current_plan(self, code: str) -> PlanInfo:
        if code not in self.current:
            raise NotFoundError(f"unknown plan {code!r}; load it into the catalog first")
        return self.plans[self.current[code]]

    def coupon_by_code(self, code: str) -> CouponInfo:
        if code not in self.coupon_codes:
            raise NotFoundError(f"unknown coupon {code!r}")
        return self.coupons[self.coupon_codes[code]]

    @property
    def supplier_state(self) -> str:
        if not self.supplier_gstin:
            raise ValidationError("no supplier GSTIN configured: load a catalog with a supplier")
        return self.supplier_gstin[:2]


def load_snapshot(conn: Connection) -> CatalogSnapshot:
    """Read the whole catalog; it is small (tens of plans) next to the subscriptions."""
    snap = CatalogSnapshot()
    prices: dict[int, dict[str, PriceInfo]] = {}
    for r in conn.execute(select(s.prices)):
        tiers = tuple(Tier(**t) for t in json.loads(r.tiers_json)) if r.tiers_json else ()
        prices.setdefault(r.plan_id, {})[r.currency] = PriceInfo(
            r.currency, r.unit_amount_minor, tiers
        )
    q = select(s.plans, s.products.c.sac).join(s.products, s.plans.c.product_id == s.products.c.id)
    for r in conn.execute(q):
        snap.plans[r.id] = PlanInfo(
            r.id,
            r.code,
            r.version,
            r.name,
            r.sac,
            r.interval,
            r.interval_count,
            r.trial_days,
            r.pricing_model,
            bool(r.is_addon),
            bool(r.is_current),
            prices.get(r.id, {}),
        )
        if r.is_current:
            snap.current[r.code] = r.id
    for r in conn.execute(select(s.coupons)):
        snap.coupons[r.id] = CouponInfo(
            r.id,
            r.code,
            r.percent_off_bp,
            r.amount_off_minor,
            r.currency,
            r.duration,
            r.duration_in_periods,
        )
        snap.coupon_codes[r.code] = r.id
    for r in conn.execute(select(s.settings)):
        if r.key == "supplier_gstin":
            snap.supplier_gstin = r.value
        elif r.key == "supplier_name":
            snap.supplier_name = r.value
        elif r.key == "invoice_prefix":
            snap.invoice_prefix = r.value
    return snap
