"""End to end: the simulated gateway's signed webhooks land through the real receiver app, the
`webhook_events_sensor` ticks, and `apply_gateway_events_job` (in-process) updates the ledger."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
from sqlalchemy import select
from starlette.testclient import TestClient

from billing_jobs.catalog import DEMO_CATALOG, load_catalog
from billing_jobs.customers import create_customer
from billing_jobs.ledger import make_engine, upgrade_ledger
from billing_jobs.ledger import schema as s
from billing_jobs.ledger.schema import payments_refunds
from billing_jobs.payments import gateway_events as ge
from billing_jobs.payments.collection import collect_open_invoices
from billing_jobs.payments.payment_methods import add_payment_method
from billing_jobs.subscriptions.service import create_subscription
from ingestion.webhooks import WebhookConfig, create_app

T0 = datetime(2025, 3, 3, 6, 0, tzinfo=UTC)
LATER = T0 + timedelta(days=2)
METHODS = [
    {"kind": "upi", "token": "tok_upi_okhdfcbank", "vpa": "asha@okhdfcbank"},
    {"kind": "upi", "token": "tok_upi_oksbi", "vpa": "bala@oksbi"},
    {"kind": "upi", "token": "tok_upi_ybl", "vpa": "chetan@ybl"},
    {"kind": "netbanking", "token": "tok_netbanking_HDFC", "bank": "HDFC"},
]


def _apply_job(defs, as_of: datetime, instance):
    from orchestration.defs.resources import build_resources

    job = defs.resolve_job_def("apply_gateway_events_job")
    result = job.execute_in_process(
        instance=instance,
        resources=build_resources(),
        run_config={
            "ops": {
                "apply_gateway_events_op": {
                    "config": {"as_of": as_of.isoformat(), "policy": "exponential"}
                }
            }
        },
    )
    assert result.success
    return result.output_for_node("apply_gateway_events_op")


def test_landed_webhooks_reach_the_ledger_once(paysight_env):
    from orchestration.definitions import defs
    from orchestration.lib.env import get_settings
    from orchestration.lib.gateways import gateway_from_settings

    settings = get_settings()
    engine = make_engine(str(settings.ledger_url))
    upgrade_ledger(engine)
    load_catalog(engine, DEMO_CATALOG, now=T0)
    clock = {"t": T0}
    gw = gateway_from_settings(clock=lambda: clock["t"])
    for method in METHODS:
        cid = create_customer(engine, name="Acme", state_code="29", currency="INR", now=T0)["id"]
        add_payment_method(engine, gw, cid, method, T0)
        create_subscription(engine, customer_id=cid, plan="starter-monthly", start=T0, trial_days=0)
    report = collect_open_invoices(engine, gw, "simulated", T0)
    assert len(report.pending) == 3 and len(report.paid) == 1  # UPI answers later
    with engine.connect() as conn:
        attempts = {r.invoice_id: r for r in conn.execute(select(s.payment_attempts))}
    captured = attempts[report.paid[0]]
    # A refund made in the gateway's dashboard: the ledger only hears of it by webhook.
    clock["t"] = T0 + timedelta(hours=1)
    gw.refund(captured.gateway_payment_id, 5_000, idempotency_key="dashboard-1")

    clock["t"] = LATER
    deliveries = gw.webhooks_due(LATER)
    types = {json.loads(d.body)["type"] for d in deliveries}
    assert {"payment_intent.processing", "charge.refunded", "customer.created"} <= types
    config = WebhookConfig(
        landing_dir=settings.landing_dir,
        secrets={"simulated": [gw.webhook_secret]},
        clock=LATER.timestamp,
    )
    with TestClient(create_app(config)) as client:
        for d in deliveries:
            response = client.post("/webhooks/simulated", content=d.body, headers=dict(d.headers))
            assert response.json() == {"status": "accepted"}
        again = client.post(
            "/webhooks/simulated", content=deliveries[0].body, headers=dict(deliveries[0].headers)
        )
        assert again.json() == {"status": "duplicate"}

    sensor = defs.resolve_sensor_def("webhook_events_sensor")
    with dg.DagsterInstance.ephemeral() as instance:
        ctx = dg.build_sensor_context(instance=instance)
        requests = sensor(ctx)
        assert {r.job_name for r in requests} == {
            "apply_gateway_events_job",
            "ingestion_webhook_events_job",
        }
        assert requests[0].tags["paysight/events"] == str(len(deliveries))
        out = _apply_job(defs, LATER, instance)
        assert out["seen"] == len(deliveries) and out["invalid"] == 0 and out["unmatched"] == 0
        assert out["skipped"] >= 1  # customer.created, payout.paid: not ledger business
        assert out["paid"], "no late UPI success: the scenario no longer tests one"

        # The ledger now says what the gateway says, for every attempt.
        with engine.connect() as conn:
            invoices = {r.id: r for r in conn.execute(select(s.invoices))}
            now_attempts = {r.invoice_id: r for r in conn.execute(select(s.payment_attempts))}
            refunds = conn.execute(select(payments_refunds)).all()
        for inv_id in report.pending:
            truth = gw.fetch_payment(attempts[inv_id].gateway_payment_id, now=LATER)
            assert now_attempts[inv_id].status == truth.status.value
            assert (invoices[inv_id].status == "paid") == (truth.status.value == "succeeded")
            if truth.status.value == "succeeded":
                assert invoices[inv_id].amount_paid_minor == invoices[inv_id].amount_due_minor
        assert sorted(out["paid"]) == sorted(
            i for i in report.pending if now_attempts[i].status == "succeeded"
        )
        assert [(r.gateway_payment_id, r.amount_minor) for r in refunds] == [
            (captured.gateway_payment_id, 5_000)
        ]

        # Nothing new: the sensor skips and a re-run of the job applies nothing.
        later_ctx = dg.build_sensor_context(instance=instance, cursor=ctx.cursor)
        assert isinstance(sensor(later_ctx), dg.SkipReason)
        rerun = _apply_job(defs, LATER + timedelta(hours=1), instance)
        assert rerun["seen"] == 0 and rerun["applied"] == 0 and rerun["paid"] == []
    assert ge.unmatched_events(engine) == []
    engine.dispose()
