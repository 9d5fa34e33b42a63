"""Price amounts for a quantity: per-unit, tiered (graduated) and volume pricing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from billing_jobs.errors import ValidationError
from billing_jobs.inputs import MAX_QUANTITY


class PricingModel(StrEnum):
    """How a price turns a quantity into an amount."""

    PER_UNIT = "per_unit"  # unit_amount x quantity (a flat plan is quantity 1)
    TIERED = "tiered"  # graduated: each unit priced by the tier it falls in
    VOLUME = "volume"  # every unit priced by the tier the total quantity reaches


@dataclass(frozen=True, slots=True)
class Tier:
    """Units up to `up_to` (inclusive; None = unbounded) at unit_minor, plus flat_minor."""

    up_to: int | None
    unit_minor: int
    flat_minor: int = 0


def amount_for_quantity(
    model: PricingModel | str,
    quantity: int,
    unit_minor: int | None,
    tiers: Sequence[Tier] = (),
) -> int:
    """Amount in minor units for `quantity` under the pricing model."""
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
        raise ValidationError(f"quantity must be a positive integer, got {quantity!r}")
    if quantity > MAX_QUANTITY:
        raise ValidationError(f"quantity {quantity} is above the limit of {MAX_QUANTITY}")
    model = PricingModel(model)
    if model is PricingModel.PER_UNIT:
        if unit_minor is None:
            raise ValidationError("per-unit price has no unit amount")
        return unit_minor * quantity
    if not tiers:
        raise ValidationError(f"{model.value} price has no tiers")
    if model is PricingModel.VOLUME:
        for tier in tiers:
            if tier.up_to is None or quantity <= tier.up_to:
                return tier.unit_minor * quantity + tier.flat_minor
        raise ValidationError(f"quantity {quantity} exceeds the last tier")
    total, lower = 0, 0
    for tier in tiers:
        upper = quantity if tier.up_to is None else min(quantity, tier.up_to)
        if upper > lower:
            total += (upper - lower) * tier.unit_minor + tier.flat_minor
            lower = upper
        if lower >= quantity:
            return total
    raise ValidationError(f"quantity {quantity} exceeds the last tier")
