"""Build the active gateway adapters from settings / `GatewayResource`; the simulated gateway
keeps its state in `<data_dir>/gateway.sqlite`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from billing_jobs.payments.gateway import Gateway, GatewayError

SIMULATED_SEED = 42
SIMULATED_STATE_FILE = "gateway.sqlite"


def simulated_state_path(data_dir: Path) -> Path:
    return Path(data_dir) / SIMULATED_STATE_FILE


def build_gateway(
    name: str,
    *,
    data_dir: Path,
    stripe_api_key: str | None = None,
    stripe_api_base: str | None = None,
    razorpay_key_id: str | None = None,
    razorpay_key_secret: str | None = None,
    clock: Callable[[], datetime] | None = None,
    simulated_webhook_secret: str | None = None,
) -> Gateway:
    """One adapter by name. `clock` is the simulated gateway's "now" (jobs pass their as-of
    time so a back-dated run charges at that time); real gateways keep their own clocks."""
    if name == "simulated":
        from simulation.gateway.simulated import SimulatedGateway

        path = simulated_state_path(data_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        return SimulatedGateway(
            SIMULATED_SEED, 1, state=path, clock=clock or (lambda: datetime.now(UTC)),
            webhook_secret=simulated_webhook_secret,
        )  # fmt: skip
    if name == "stripe":
        from ingestion.gateways.stripe import StripeConfig, StripeGateway

        if not stripe_api_key:
            raise GatewayError("the stripe gateway is active but STRIPE_API_KEY is not set")
        return StripeGateway(StripeConfig(api_key=stripe_api_key, api_base=stripe_api_base))
    if name == "razorpay":
        from ingestion.gateways.razorpay import RazorpayConfig, RazorpayGateway

        if not razorpay_key_id or not razorpay_key_secret:
            raise GatewayError("the razorpay gateway needs RAZORPAY_KEY_ID and RAZORPAY_KEY_SECRET")
        return RazorpayGateway(RazorpayConfig(razorpay_key_id, razorpay_key_secret))
    raise GatewayError(f"unknown gateway {name!r}; choose simulated, stripe or razorpay")


def gateway_from_resource(
    resource: object,
    name: str | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Gateway:
    """The adapter `name` (default: the first active one) from a `GatewayResource`."""
    active: list[str] = list(resource.gateways)  # type: ignore[attr-defined]
    chosen = name or active[0]
    if chosen not in active:
        raise GatewayError(f"gateway {chosen!r} is not active (active: {', '.join(active)})")
    return build_gateway(
        chosen,
        data_dir=Path(resource.data_dir),  # type: ignore[attr-defined]
        stripe_api_key=resource.stripe_api_key,  # type: ignore[attr-defined]
        stripe_api_base=resource.stripe_api_base,  # type: ignore[attr-defined]
        razorpay_key_id=resource.razorpay_key_id,  # type: ignore[attr-defined]
        razorpay_key_secret=resource.razorpay_key_secret,  # type: ignore[attr-defined]
        clock=clock,
    )


def gateway_from_settings(
    name: str | None = None, clock: Callable[[], datetime] | None = None
) -> Gateway:
    """Same as `gateway_from_resource`, for the CLI (which has settings, not resources)."""
    from orchestration.lib.env import get_settings

    st = get_settings()
    chosen = name or st.gateways[0]
    if chosen not in st.gateways:
        raise GatewayError(f"gateway {chosen!r} is not active (active: {', '.join(st.gateways)})")
    return build_gateway(
        chosen,
        data_dir=st.data_dir,
        stripe_api_key=st.stripe_api_key.get_secret_value() if st.stripe_api_key else None,
        stripe_api_base=st.stripe_api_base,
        razorpay_key_id=st.razorpay_key_id,
        razorpay_key_secret=(
            st.razorpay_key_secret.get_secret_value() if st.razorpay_key_secret else None
        ),
        clock=clock,
        simulated_webhook_secret=st.webhook_secret_values()["simulated"],
    )
