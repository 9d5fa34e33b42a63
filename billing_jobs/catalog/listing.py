"""The catalog as operators read it: current plans (or every version) with their prices."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from billing_jobs.ledger import schema as s
from billing_jobs.ledger.session import Target, write_conn


def list_plans(target: Target, *, all_versions: bool = False) -> list[dict[str, Any]]:
    """Plans with product, interval, trial and each currency's price: `unit_amount_minor` for
    per-unit plans, `tiers` ({up_to, unit_minor, flat_minor}) for tiered and volume ones."""
    p, pr = s.plans, s.products
    q = (
        select(p, pr.c.code.label("product"), pr.c.sac)
        .join(pr, pr.c.id == p.c.product_id)
        .order_by(p.c.is_addon, p.c.code, p.c.version)
    )
    if not all_versions:
        q = q.where(p.c.is_current.is_(True))
    with write_conn(target) as conn:
        rows = conn.execute(q).all()
        prices: dict[int, list[dict[str, Any]]] = {}
        for r in conn.execute(select(s.prices).order_by(s.prices.c.currency)):
            prices.setdefault(r.plan_id, []).append(
                {
                    "currency": r.currency,
                    "unit_amount_minor": r.unit_amount_minor,
                    "tiers": json.loads(r.tiers_json) if r.tiers_json else [],
                }
            )
    return [
        {
            "id": r.id, "code": r.code, "version": r.version, "name": r.name,
            "product": r.product, "sac": r.sac, "interval": r.interval,
            "interval_count": r.interval_count, "trial_days": r.trial_days,
            "pricing_model": r.pricing_model, "addon": bool(r.is_addon),
            "current": bool(r.is_current), "prices": prices.get(r.id, []),
        }
        for r in rows
    ]  # fmt: skip
