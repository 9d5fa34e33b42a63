"""Payments jobs: thin ops over `billing_jobs.payments` (collection, retries, dunning run, janitor,
gateway events): collect, retry, dun, resolve and apply landed webhook events."""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from billing_jobs.ledger import upgrade_ledger
from billing_jobs.payments import gateway_events as ge
from billing_jobs.payments.collection import collect_open_invoices, run_due_retries
from billing_jobs.payments.dunning_run import run_dunning
from billing_jobs.payments.event_parsing import IncomingEvent
from billing_jobs.payments.janitor import resolve_unknown
from billing_jobs.payments.retries import ExponentialPolicy, FixedPolicy, RetryPolicy, SmartPolicy
from orchestration.defs.payments.smart_policy import smart_policy
from orchestration.lib.env import config_instant, get_settings
from orchestration.lib.gateways import gateway_from_resource
from orchestration.lib.resources import (
    GatewayResource,
    LandingResource,
    LedgerResource,
    MlflowResource,
)

PAYMENTS_TAG = {"paysight/area": "payments"}
# Ops that charge or settle payments share one Dagster concurrency pool (limit 1 in
# deploy/dagster.yaml): collection, retries, the janitor and webhook outcomes never overlap
# inside one instance. The ledger's per-invoice claim still guards any other caller.
PAYMENTS_POOL = "payments"
COLLECT_JOB, RETRIES_JOB = "payments_collect_job", "payment_retries_job"
DUNNING_JOB, JANITOR_JOB = "dunning_job", "payments_janitor_job"
APPLY_EVENTS_JOB = "apply_gateway_events_job"
PAYMENT_JOBS = (COLLECT_JOB, RETRIES_JOB, DUNNING_JOB, JANITOR_JOB, APPLY_EVENTS_JOB)
WEBHOOK_CURSOR = "webhooks"  # the ledger's own position in the landing-zone journal
POLICIES: dict[str, Callable[[], RetryPolicy]] = {
    "exponential": ExponentialPolicy,
    "fixed": FixedPolicy,
    "smart": SmartPolicy,  # the jobs give it the champion retry model (see policy_of)
}


class PaymentsRunConfig(dg.Config):
    """Operator knobs: run as of an instant (back-fills, tests), which gateway, which policy.

    `smart` uses `models:/retry_timing@champion` and falls back to exponential backoff when no
    champion is registered or it cannot be loaded; the run's metadata says which."""

    as_of: str | None = None
    gateway: str | None = None
    policy: str = "smart"


def run_time(config: PaymentsRunConfig) -> datetime:
    """The run's instant: `as_of` (ISO 8601 with a UTC offset, `billing_jobs.inputs.instant`)
    or now."""
    return config_instant(config.as_of)


def policy_of(
    config: PaymentsRunConfig,
    context: dg.OpExecutionContext | None = None,
    mlflow: MlflowResource | None = None,
) -> tuple[RetryPolicy, dict[str, str]]:
    """The run's retry policy and metadata naming it (for `smart`: the model version or
    "fallback", also logged)."""
    if config.policy not in POLICIES:
        raise dg.Failure(f"unknown retry policy {config.policy!r}; choose {sorted(POLICIES)}")
    if config.policy != "smart" or mlflow is None:
        return POLICIES[config.policy](), {"retry_policy": config.policy}
    choice = smart_policy(mlflow, get_settings().timezone)
    if context is not None:
        context.log.info("retry policy smart: %s (%s)", choice.model, choice.note)
    return choice.policy, {"retry_policy": "smart", **choice.metadata()}


def _output(
    context: dg.OpExecutionContext,
    what: str,
    summary: dict[str, Any],
    extra: dict[str, str] | None = None,
) -> dg.Output:
    context.log.info("%s: %s", what, summary)
    counts = {k: len(v) if isinstance(v, list | dict) else v for k, v in summary.items()}
    metadata: dict[str, Any] = {k: v for k, v in counts.items() if isinstance(v, int)}
    return dg.Output(summary, metadata={**metadata, **(extra or {})})


@dg.op(pool=PAYMENTS_POOL, tags={"kind": "payments"})
def payments_collect_op(
    context: dg.OpExecutionContext,
    config: PaymentsRunConfig,
    ledger: LedgerResource,
    gateway: GatewayResource,
    mlflow: MlflowResource,
) -> dg.Output[dict]:
    """Charge every due open invoice once on its default payment method."""
    now = run_time(config)
    engine = ledger.engine()
    upgrade_ledger(engine)
    gw = gateway_from_resource(gateway, config.gateway, clock=lambda: now)
    policy, about = policy_of(config, context, mlflow)
    report = collect_open_invoices(engine, gw, gw.name, now, policy)
    return _output(context, "collected", report.to_dict(), about)


@dg.op(pool=PAYMENTS_POOL, tags={"kind": "payments"})
def payment_retries_op(
    context: dg.OpExecutionContext,
    config: PaymentsRunConfig,
    ledger: LedgerResource,
    gateway: GatewayResource,
    mlflow: MlflowResource,
) -> dg.Output[dict]:
    """Retry failed invoices whose scheduled retry time has come."""
    now = run_time(config)
    engine = ledger.engine()
    upgrade_ledger(engine)
    gw = gateway_from_resource(gateway, config.gateway, clock=lambda: now)
    policy, about = policy_of(config, context, mlflow)
    report = run_due_retries(engine, gw, now, policy)
    return _output(context, "retried", report.to_dict(), about)


@dg.op(pool=PAYMENTS_POOL, tags={"kind": "payments"})
def dunning_op(
    context: dg.OpExecutionContext, config: PaymentsRunConfig, ledger: LedgerResource
) -> dg.Output[dict]:
    """Send due dunning notifications and apply restrict / cancel / mark-unpaid."""
    now = run_time(config)
    engine = ledger.engine()
    upgrade_ledger(engine)
    return _output(context, "dunning", run_dunning(engine, now))


@dg.op(pool=PAYMENTS_POOL, tags={"kind": "payments"})
def payments_janitor_op(
    context: dg.OpExecutionContext,
    config: PaymentsRunConfig,
    ledger: LedgerResource,
    gateway: GatewayResource,
    mlflow: MlflowResource,
) -> dg.Output[dict]:
    """Ask the gateway about unresolved attempts (timeouts, pending UPI); never charges."""
    now = run_time(config)
    engine = ledger.engine()
    upgrade_ledger(engine)
    gw = gateway_from_resource(gateway, config.gateway, clock=lambda: now)
    policy, about = policy_of(config, context, mlflow)
    report = resolve_unknown(engine, gw, now, policy)
    return _output(context, "janitor", report.to_dict(), about)


def landed_to_incoming(landed: list[Any]) -> list[IncomingEvent]:
    """Landing-zone records (`ingestion.webhooks.journal.LandedEvent`) as billing's input."""
    out = []
    for e in landed:
        try:
            received = datetime.fromisoformat(e.received_at)
        except ValueError:
            received = None
        if received is None or received.tzinfo is None:
            received = datetime.fromtimestamp(0, UTC)  # the body's own `created` is used first
        out.append(
            IncomingEvent(
                e.source, e.event_id, e.event_type, e.body, received, e.signature_verified
            )
        )
    return out


@dg.op(pool=PAYMENTS_POOL, tags={"kind": "payments"})
def apply_gateway_events_op(
    context: dg.OpExecutionContext,
    config: PaymentsRunConfig,
    ledger: LedgerResource,
    landing: LandingResource,
    mlflow: MlflowResource,
) -> dg.Output[dict]:
    """Apply newly landed webhook events to the ledger (late UPI outcomes, refunds, disputes),
    each once; events for payments not in the ledger yet wait as `unmatched`."""
    from ingestion.webhooks.journal import iter_landed_events

    now = run_time(config)
    engine = ledger.engine()
    upgrade_ledger(engine)
    policy, about = policy_of(config, context, mlflow)
    cursor = ge.load_cursor(engine, WEBHOOK_CURSOR)
    landed, new_cursor = iter_landed_events(landing.landing_dir(), cursor, max_events=10_000)
    report = ge.apply_gateway_events(engine, landed_to_incoming(landed), now, policy)
    # Saved after applying: a crash in between re-reads events the dedupe table then skips.
    ge.save_cursor(engine, WEBHOOK_CURSOR, new_cursor)
    for note in report.notes:
        context.log.warning(note)
    summary = report.to_dict()
    summary.pop("notes")
    return _output(context, "gateway events", summary, about)


# Registered through `webhook_events_sensor` (orchestration/defs/ingestion/sensors.py), which
# targets it; listing it in a second Definitions would define the job twice.
@dg.job(
    name=APPLY_EVENTS_JOB,
    tags=PAYMENTS_TAG,
    description="Apply landed gateway webhook events to the ledger, each exactly once.",
)
def apply_gateway_events_job():
    apply_gateway_events_op()


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
