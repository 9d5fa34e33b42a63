"""The payments jobs' `smart` policy: the registered `retry_timing` champion from a real MLflow
sqlite store when there is one, exponential backoff (and metadata saying so) when there is not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from sqlalchemy import select

from billing_jobs.catalog import DEMO_CATALOG, load_catalog
from billing_jobs.customers import create_customer
from billing_jobs.ledger import make_engine, upgrade_ledger
from billing_jobs.ledger import schema as s
from billing_jobs.payments.attempt_store import LedgerAttemptStore
from billing_jobs.payments.charging import InvoiceCharge, retry_context
from billing_jobs.payments.payment_methods import add_payment_method
from billing_jobs.payments.retries import ExponentialPolicy, SmartPolicy
from billing_jobs.subscriptions.service import create_subscription

T0 = datetime(2025, 3, 3, 6, 0, tzinfo=UTC)
SBIN = {"kind": "netbanking", "token": "tok_netbanking_SBIN", "bank": "SBIN"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A real MLflow sqlite store holding a RetryModel (trained on ml.synthetic) registered as
    `retry_timing` with alias champion; built once per module because logging is slow."""
    from threadpoolctl import threadpool_limits

    from ml import registry
    from ml.retry import REGISTERED_NAME, fit_retry_model, log_and_register
    from ml.synthetic import retry_attempts

    root = tmp_path_factory.mktemp("mlflow")
    uri, artifacts = f"sqlite:///{root / 'mlflow.db'}", root / "mlartifacts"
    data = retry_attempts(2_000, seed=5)
    with threadpool_limits(limits=1):  # shared CI cores: OpenMP spinning slows the fit down
        model = fit_retry_model(data)
    registry.configure(uri, "paysight", str(artifacts))
    with registry.start_asset_run("retry_timing_model", "test-run"):
        version = log_and_register(model, data.head(50), model.holdout)
    registry.MlflowClient().set_registered_model_alias(REGISTERED_NAME, "champion", version)
    return {"uri": uri, "artifacts": artifacts, "model": model, "version": version}


@pytest.fixture
def use_store(store, paysight_env, monkeypatch):
    from orchestration.lib.env import get_settings

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["uri"])
    monkeypatch.setenv("PAYSIGHT_MLFLOW_ARTIFACTS_DIR", str(store["artifacts"]))
    get_settings.cache_clear()
    return store


@pytest.fixture
def world(request, paysight_env):
    from orchestration.lib.env import get_settings
    from orchestration.lib.gateways import gateway_from_settings

    engine = make_engine(str(get_settings().ledger_url))
    upgrade_ledger(engine)
    load_catalog(engine, DEMO_CATALOG, now=T0)
    gw = gateway_from_settings(clock=lambda: T0)
    customers = getattr(request, "param", 30)
    for _ in range(customers):  # the weak issuer late in the month: many soft declines
        cid = create_customer(
            engine, name="Acme", state_code="29", currency="INR", now=T0, email="ap@acme.test"
        )["id"]
        add_payment_method(engine, gw, cid, SBIN, T0)
        create_subscription(engine, customer_id=cid, plan="starter-monthly", start=T0, trial_days=0)
    yield engine
    engine.dispose()


def _run(name: str, as_of: datetime, **extra):
    from orchestration.definitions import defs
    from orchestration.defs.resources import build_resources

    job = defs.resolve_job_def(name)
    config = {"as_of": as_of.isoformat(), **extra}
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(
            instance=instance,
            resources=build_resources(),
            run_config={"ops": {job.nodes[0].name: {"config": config}}},
        )
        logs = [e.user_message for e in instance.all_logs(result.run_id)]
    op = job.nodes[0].name
    output = result.output_for_node(op)
    event = next(e for e in result.events_for_node(op) if e.event_type_value == "STEP_OUTPUT")
    metadata = {k: v.value for k, v in event.step_output_data.metadata.items()}
    return output, metadata, logs


def _contexts(engine, invoice_ids):
    """The retry context of each invoice, rebuilt from the ledger as the service sees it."""
    store = LedgerAttemptStore(engine, "simulated")
    out = {}
    with engine.connect() as conn:
        due = dict(conn.execute(select(s.invoices.c.id, s.invoices.c.amount_due_minor)).all())
    for inv in invoice_ids:
        charge = InvoiceCharge(str(inv), "-", "-", due[int(inv)], "INR")
        out[int(inv)] = retry_context(
            charge, store.attempts(str(inv)), "simulated",
            features={"method": "netbanking", "issuer": "SBIN"},
        )  # fmt: skip
    return out


def test_retries_job_schedules_with_the_champion_model(world, use_store):
    from orchestration.defs.payments.smart_policy import ModelRetryScorer

    version, engine = use_store["version"], world
    first, meta, _ = _run("payments_collect_job", T0 + timedelta(days=17))
    assert meta["retry_policy"] == "smart" and meta["retry_model"] == f"retry_timing v{version}"
    assert first["retries_scheduled"], "no soft decline: the scenario no longer tests retries"
    late = max(datetime.fromisoformat(v) for v in first["retries_scheduled"].values())
    retried, meta, logs = _run("payment_retries_job", late)
    assert meta["retry_model"] == f"retry_timing v{version}"
    assert meta["retry_model_note"] == f"models:/retry_timing@champion is version {version}"
    assert any(f"retry policy smart: retry_timing v{version}" in m for m in logs)
    scheduled = {int(k): datetime.fromisoformat(v) for k, v in retried["retries_scheduled"].items()}
    assert scheduled, "no retry failed again: nothing was rescheduled by the model"
    with_model = SmartPolicy(scorer=ModelRetryScorer(use_store["model"], "Asia/Kolkata"))
    for inv, ctx in _contexts(engine, scheduled).items():
        assert ctx is not None
        assert with_model.next_attempt(ctx).at == scheduled[inv]  # exactly the model's choice
        assert ExponentialPolicy().next_attempt(ctx).at != scheduled[inv]


def test_without_a_store_the_jobs_fall_back_to_exponential(world, paysight_env):
    first, meta, logs = _run("payments_collect_job", T0 + timedelta(days=17))
    assert meta["retry_model"] == "fallback"
    assert "no MLflow tracking store" in meta["retry_model_note"]
    assert any("retry policy smart: fallback" in m for m in logs)
    assert not (paysight_env / "mlflow.db").exists()  # looking did not create a store
    scheduled = {int(k): datetime.fromisoformat(v) for k, v in first["retries_scheduled"].items()}
    assert scheduled
    for inv, ctx in _contexts(world, scheduled).items():
        assert ExponentialPolicy().next_attempt(ctx).at == scheduled[inv]


@pytest.mark.parametrize("world", [1], indirect=True)
def test_without_a_champion_alias_or_model_files_the_jobs_fall_back(world, use_store):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=use_store["uri"], registry_uri=use_store["uri"])
    # Registered but only a challenger: not used.
    client.delete_registered_model_alias("retry_timing", "champion")
    try:
        _, meta, _ = _run("payments_collect_job", T0 + timedelta(days=17))
    finally:
        client.set_registered_model_alias("retry_timing", "champion", use_store["version"])
    assert meta["retry_model"] == "fallback"
    assert "no champion alias" in meta["retry_model_note"]
    # A champion whose files are gone cannot be loaded: fall back, do not fail the run.
    moved = use_store["artifacts"].with_name("moved-away")
    use_store["artifacts"].rename(moved)
    try:
        _, meta, _ = _run("payments_janitor_job", T0 + timedelta(days=17))
    finally:
        moved.rename(use_store["artifacts"])
    assert meta["retry_model"] == "fallback"
    assert "failed" in meta["retry_model_note"]


@pytest.mark.parametrize("world", [1], indirect=True)
def test_explicit_exponential_policy_does_not_consult_mlflow(world, use_store):
    _, meta, _ = _run("payments_collect_job", T0 + timedelta(days=17), policy="exponential")
    assert meta["retry_policy"] == "exponential" and "retry_model" not in meta
