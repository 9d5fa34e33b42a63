"""Payments jobs: thin ops over `billing_jobs.payments_service` (collect, retry, dun, janitor)."""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from billing_jobs import payments_service as ps
from billing_jobs.ledger import upgrade_ledger
from billing_jobs.retries import ExponentialPolicy, FixedPolicy, RetryPolicy, SmartPolicy
from orchestration.lib.gateways import gateway_from_resource
from orchestration.lib.resources import GatewayResource, LedgerResource

PAYMENTS_TAG = {"paysight/area": "payments"}
COLLECT_JOB, RETRIES_JOB = "payments_collect_job", "payment_retries_job"
DUNNING_JOB, JANITOR_JOB = "dunning_job", "payments_janitor_job"
PAYMENT_JOBS = (COLLECT_JOB, RETRIES_JOB, DUNNING_JOB, JANITOR_JOB)
POLICIES: dict[str, Callable[[], RetryPolicy]] = {
    "exponential": ExponentialPolicy,
    "fixed": FixedPolicy,
    "smart": SmartPolicy,  # without a scorer it behaves as exponential
}


class PaymentsRunConfig(dg.Config):
    """Operator knobs: run as of an instant (back-fills, tests), which gateway, which policy."""

    as_of: str | None = None
    gateway: str | None = None
    policy: str = "exponential"


def run_time(config: PaymentsRunConfig) -> datetime:
    if not config.as_of:
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(config.as_of)
    except ValueError:
        raise dg.Failure(f"as_of is not an ISO instant: {config.as_of!r}") from None
    if at.tzinfo is None:
        raise dg.Failure(f"as_of must include a UTC offset, got {config.as_of!r}")
    return at


def policy_of(config: PaymentsRunConfig) -> RetryPolicy:
    if config.policy not in POLICIES:
        raise dg.Failure(f"unknown retry policy {config.policy!r}; choose {sorted(POLICIES)}")
    return POLICIES[config.policy]()


def _output(context: dg.OpExecutionContext, what: str, summary: dict[str, Any]) -> dg.Output:
    context.log.info("%s: %s", what, summary)
    counts = {k: len(v) if isinstance(v, list | dict) else v for k, v in summary.items()}
    return dg.Output(summary, metadata={k: v for k, v in counts.items() if isinstance(v, int)})


@dg.op(tags={"kind": "payments"})
def payments_collect_op(
    context: dg.OpExecutionContext,
    config: PaymentsRunConfig,
    ledger: LedgerResource,
    gateway: GatewayResource,
) -> dg.Output[dict]:
    """Charge every due open invoice once on its default payment method."""
    now = run_time(config)
    engine = ledger.engine()
    upgrade_ledger(engine)
    gw = gateway_from_resource(gateway, config.gateway, clock=lambda: now)
    report = ps.collect_open_invoices(engine, gw, gw.name, now, policy_of(config))
    return _output(context, "collected", report.to_dict())


@dg.op(tags={"kind": "payments"})
def payment_retries_op(
    context: dg.OpExecutionContext,
    config: PaymentsRunConfig,
    ledger: LedgerResource,
    gateway: GatewayResource,
) -> dg.Output[dict]:
    """Retry failed invoices whose scheduled retry time has come."""
    now = run_time(config)
    engine = ledger.engine()
    upgrade_ledger(engine)
    gw = gateway_from_resource(gateway, config.gateway, clock=lambda: now)
    report = ps.run_due_retries(engine, gw, now, policy_of(config))
    return _output(context, "retried", report.to_dict())


@dg.op(tags={"kind": "payments"})
def dunning_op(
    context: dg.OpExecutionContext, config: PaymentsRunConfig, ledger: LedgerResource
) -> dg.Output[dict]:
    """Send due dunning notifications and apply restrict / cancel / mark-unpaid."""
    now = run_time(config)
    engine = ledger.engine()
    upgrade_ledger(engine)
    return _output(context, "dunning", ps.run_dunning(engine, now))


@dg.op(tags={"kind": "payments"})
def payments_janitor_op(
    context: dg.OpExecutionContext,
    config: PaymentsRunConfig,
    ledger: LedgerResource,
    gateway: GatewayResource,
) -> dg.Output[dict]:
    """Ask the gateway about unresolved attempts (timeouts, pending UPI); never charges."""
    now = run_time(config)
    engine = ledger.engine()
    upgrade_ledger(engine)
    gw = gateway_from_resource(gateway, config.gateway, clock=lambda: now)
    report = ps.resolve_unknown(engine, gw, now, policy_of(config))
    return _output(context, "janitor", report.to_dict())


@dg.definitions
def payments_job_defs() -> dg.Definitions:
    @dg.job(name=COLLECT_JOB, tags=PAYMENTS_TAG, description="Charge due open invoices once.")
    def payments_collect_job():
        payments_collect_op()

    @dg.job(name=RETRIES_JOB, tags=PAYMENTS_TAG, description="Run due payment retries.")
    def payment_retries_job():
        payment_retries_op()

    @dg.job(name=DUNNING_JOB, tags=PAYMENTS_TAG, description="Advance dunning processes.")
    def dunning_job():
        dunning_op()

    @dg.job(name=JANITOR_JOB, tags=PAYMENTS_TAG, description="Resolve unknown payment outcomes.")
    def payments_janitor_job():
        payments_janitor_op()

    return dg.Definitions(
        jobs=[payments_collect_job, payment_retries_job, dunning_job, payments_janitor_job]
    )
