"""Payments jobs, schedules and sensors run the real payments service against a temporary ledger
and the simulated gateway (state in <data_dir>/gateway.sqlite)."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from sqlalchemy import select

from billing_jobs.catalog import DEMO_CATALOG, load_catalog
from billing_jobs.customers import create_customer
from billing_jobs.ledger import make_engine, upgrade_ledger
from billing_jobs.ledger import schema as s
from billing_jobs.ledger.schema import ops_alerts
from billing_jobs.payments.payment_methods import add_payment_method
from billing_jobs.subscriptions.service import create_subscription

T0 = datetime(2025, 3, 3, 6, 0, tzinfo=UTC)
NETBANKING = {"kind": "netbanking", "token": "tok_netbanking_HDFC", "bank": "HDFC"}
EXPIRING = {"kind": "card", "token": "tok_card_sbi_visa_4242_03_2025", "last4": "4242",
            "exp_month": 3, "exp_year": 2025}  # fmt: skip


@pytest.fixture
def defs():
    from orchestration.definitions import defs

    return defs


@pytest.fixture
def world(paysight_env):
    from orchestration.lib.env import get_settings
    from orchestration.lib.gateways import gateway_from_settings

    engine = make_engine(str(get_settings().ledger_url))
    upgrade_ledger(engine)
    load_catalog(engine, DEMO_CATALOG, now=T0)
    clock = {"t": T0}
    gw = gateway_from_settings(clock=lambda: clock["t"])
    yield engine, gw, clock
    engine.dispose()


def _customer(engine, gw, method) -> int:
    cid = create_customer(
        engine, name="Acme", state_code="29", currency="INR", now=T0, email="ap@acme.test"
    )["id"]
    add_payment_method(engine, gw, cid, method, T0)
    return cid


def _run(defs, name: str, as_of: datetime, instance=None, **extra):
    from orchestration.defs.resources import build_resources

    op = defs.resolve_job_def(name).nodes[0].name
    config = {"as_of": as_of.isoformat(), **extra}
    with dg.DagsterInstance.ephemeral() if instance is None else _same(instance) as inst:
        return defs.resolve_job_def(name).execute_in_process(
            instance=inst,
            resources=build_resources(),
            run_config={"ops": {op: {"config": config}}},
            raise_on_error=False,
        )


class _same:
    def __init__(self, inst):
        self.inst = inst

    def __enter__(self):
        return self.inst

    def __exit__(self, *exc):
        return False


def _invoice(engine):
    with engine.connect() as conn:
        return conn.execute(select(s.invoices)).one()


def test_definitions_hold_the_payments_jobs_schedules_and_sensors(defs):
    for job in ("payments_collect_job", "payment_retries_job", "dunning_job",
                "payments_janitor_job"):  # fmt: skip
        assert defs.resolve_job_def(job).name == job
    crons = {
        name: defs.resolve_schedule_def(name).cron_schedule
        for name in ("payment_retries_job_schedule", "dunning_job_schedule",
                     "payments_janitor_job_schedule")
    }  # fmt: skip
    assert crons == {
        "payment_retries_job_schedule": "5 * * * *",
        "dunning_job_schedule": "0 10 * * *",
        "payments_janitor_job_schedule": "*/15 * * * *",
    }
    assert defs.resolve_schedule_def("dunning_job_schedule").job_name == "dunning_job"
    assert defs.resolve_sensor_def("billing_run_success_sensor").job_name == "payments_collect_job"
    assert isinstance(
        defs.resolve_sensor_def("payments_run_failure_sensor"), dg.RunStatusSensorDefinition
    )


def test_collect_job_collects_money_once(defs, world):
    engine, gw, _ = world
    cid = _customer(engine, gw, NETBANKING)
    create_subscription(engine, customer_id=cid, plan="scale-monthly", start=T0)
    due = _invoice(engine).amount_due_minor
    first = _run(defs, "payments_collect_job", T0 + timedelta(hours=1))
    assert first.success
    out = first.output_for_node("payments_collect_op")
    assert out["collected_minor"] == {"INR": due}
    inv = _invoice(engine)
    assert inv.status == "paid" and inv.amount_paid_minor == due
    again = _run(defs, "payments_collect_job", T0 + timedelta(hours=2))
    assert again.output_for_node("payments_collect_op")["charged"] == []
    assert gw.store.one("select count(*) from sim_payments")[0] == 1


def test_retries_job_collects_soft_declines(defs, world):
    """Customers on the weak issuer late in the month: some first charges fail softly, get a
    retry time, and the retries job collects (some of) them, each invoice charged once per run."""
    engine, gw, _ = world
    sbin = {"kind": "netbanking", "token": "tok_netbanking_SBIN", "bank": "SBIN"}
    for _ in range(30):
        cid = _customer(engine, gw, sbin)
        create_subscription(engine, customer_id=cid, plan="starter-monthly", start=T0, trial_days=0)
    first = _run(defs, "payments_collect_job", T0 + timedelta(days=17))
    out = first.output_for_node("payments_collect_op")
    assert len(out["charged"]) == 30 and out["retries_scheduled"]
    late = max(datetime.fromisoformat(v) for v in out["retries_scheduled"].values())
    retried = _run(defs, "payment_retries_job", late)
    assert retried.success
    res = retried.output_for_node("payment_retries_op")
    assert sorted(res["charged"]) == sorted(int(k) for k in out["retries_scheduled"])
    with engine.connect() as conn:
        amounts = dict(conn.execute(select(s.invoices.c.id, s.invoices.c.amount_paid_minor)).all())
    assert res["paid"], "no retry succeeded: the scenario no longer exercises collection"
    assert res["collected_minor"] == {"INR": sum(amounts[i] for i in res["paid"])}
    again = _run(defs, "payment_retries_job", late + timedelta(minutes=1))
    assert again.output_for_node("payment_retries_op")["charged"] == []


def test_dunning_and_janitor_jobs_run(defs, world):
    engine, gw, _ = world
    cid = _customer(engine, gw, EXPIRING)
    start = T0 + timedelta(days=31)
    create_subscription(engine, customer_id=cid, plan="scale-monthly", start=start)
    _run(defs, "payments_collect_job", start)
    dunning = _run(defs, "dunning_job", start + timedelta(days=3, hours=1))
    assert dunning.output_for_node("dunning_op")["notifications"] == 2
    janitor = _run(defs, "payments_janitor_job", start + timedelta(days=3))
    assert janitor.success and janitor.output_for_node("payments_janitor_op")["paid"] == []


def test_billing_success_sensor_requests_one_collection_per_new_run(defs, world):
    from orchestration.defs.resources import build_resources

    sensor = defs.resolve_sensor_def("billing_run_success_sensor")
    with dg.DagsterInstance.ephemeral() as instance:
        ctx = dg.build_sensor_context(instance=instance)
        assert isinstance(sensor(ctx), dg.SkipReason)
        billing = defs.resolve_job_def("billing_run_job").execute_in_process(
            partition_key="2025-03-03", instance=instance, resources=build_resources()
        )
        assert billing.success
        request = sensor(ctx)
        assert isinstance(request, dg.RunRequest)
        assert request.run_key == f"after-billing:{billing.run_id}"
        again = dg.build_sensor_context(instance=instance, cursor=ctx.cursor)
        assert isinstance(sensor(again), dg.SkipReason)


def test_failed_payments_run_records_one_alert(defs, world):

    engine, _, _ = world
    sensor = defs.resolve_sensor_def("payments_run_failure_sensor")
    with dg.DagsterInstance.ephemeral() as instance:
        failed = _run(defs, "payments_collect_job", T0, instance=instance, policy="psychic")
        assert not failed.success
        run = instance.get_run_by_id(failed.run_id)
        event = next(e for e in failed.all_events if e.event_type_value == "PIPELINE_FAILURE")
        for _ in range(2):
            ctx = dg.build_run_status_sensor_context(
                sensor_name="payments_run_failure_sensor",
                dagster_event=event,
                dagster_instance=instance,
                dagster_run=run,
            ).for_run_failure()
            sensor(ctx)
    with engine.connect() as conn:
        rows = conn.execute(select(ops_alerts)).all()
    assert len(rows) == 1
    assert rows[0].source == "payments_collect_job" and rows[0].run_id == failed.run_id
