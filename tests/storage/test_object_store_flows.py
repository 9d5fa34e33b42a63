"""Every location on s3:// (a real S3 API server): settings, webhooks landed -> raw table,
a bank file dropped into the bucket -> ingested, the invoice run storing one object per PDF."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import dagster as dg
import duckdb
import pytest
from starlette.testclient import TestClient

from billing_jobs.ledger import make_engine
from billing_jobs.retention.ledger import remove_document_files
from billing_jobs.storage import S3Store, mirror
from ingestion.landing_loads import load_bank_settlements, load_webhook_events
from ingestion.webhooks.app import create_app
from ingestion.webhooks.config import WebhookConfig
from ingestion.webhooks.signatures import stripe_signature
from orchestration.lib.env import SettingsError, load_settings
from orchestration.lib.resources import LandingResource
from tests.invoice_seed import billed_customers

SECRET = "whsec_test"
LANDING, DOCS = "s3://paysight-test/landing", "s3://paysight-test/documents"
T0 = datetime(2025, 4, 1, 6, 0, tzinfo=UTC)


def _keys(s3, prefix: str) -> dict[str, object]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="paysight-test", Prefix=prefix)
    return {o["Key"]: o["LastModified"] for p in pages for o in p.get("Contents", [])}


def _no_s3_folder(root) -> None:
    assert not [p for p in root.rglob("s3:*")], "a local folder named s3: was created"


def test_settings_take_s3_locations_and_refuse_bad_ones(s3, paysight_env, monkeypatch, tmp_path):
    monkeypatch.setenv("PAYSIGHT_LANDING_URL", LANDING)
    monkeypatch.setenv("PAYSIGHT_DOCUMENTS_URL", DOCS)
    settings = load_settings()
    assert settings.landing_dir == paysight_env / "spool" / "landing"
    assert settings.documents_dir == paysight_env / "spool" / "documents"
    for value, needle in [
        ("s3://no-such-bucket/docs", "PAYSIGHT_DOCUMENTS_URL: s3://no-such-bucket/docs: bucket"),
        ("gs://bucket/docs", "PAYSIGHT_DOCUMENTS_URL: gs:// locations are not supported"),
        ("s3://", "PAYSIGHT_DOCUMENTS_URL: 's3://': expected s3://bucket"),
    ]:
        monkeypatch.setenv("PAYSIGHT_DOCUMENTS_URL", value)
        with pytest.raises(SettingsError, match=needle.replace("(", r"\(")):
            load_settings()
    _no_s3_folder(tmp_path)


def _post(client: TestClient, event_id: str):
    body = json.dumps({"id": event_id, "object": "event", "type": "charge.succeeded"}).encode()
    t = int(time.time())
    headers = {"Stripe-Signature": f"t={t},v1={stripe_signature(SECRET, t, body)}"}
    return client.post("/webhooks/stripe", content=body, headers=headers)


def test_webhooks_land_ship_and_load_on_another_machine(s3, tmp_path):
    receiver = tmp_path / "receiver-spool"
    with TestClient(
        create_app(WebhookConfig(landing_dir=receiver, secrets={"stripe": [SECRET]}))
    ) as c:
        for i in range(4):
            assert _post(c, f"evt_{i}").json() == {"status": "accepted"}
        LandingResource(url=LANDING, spool=str(receiver)).landing_dir()  # ships the segments
        _post(c, "evt_4")  # lands after shipping: stays local until the next mirror
    loader = LandingResource(url=LANDING, spool=str(tmp_path / "loader-spool"))
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    now = datetime.now(UTC)
    assert load_webhook_events(loader.landing_dir(), con, now).loaded == 4
    LandingResource(url=LANDING, spool=str(receiver)).landing_dir()
    assert load_webhook_events(loader.landing_dir(), con, now).loaded == 1  # offsets still hold
    assert load_webhook_events(loader.landing_dir(), con, now).loaded == 0
    ids = {r[0] for r in con.execute("select event_id from raw.webhook_events").fetchall()}
    assert ids == {f"evt_{i}" for i in range(5)}
    _no_s3_folder(tmp_path)


def test_a_bank_file_put_into_the_bucket_is_ingested_once(s3, tmp_path):
    body = (
        "settlement_id,utr,payment_id,gross,fee,tax,net,settled_at,currency\n"
        "setl_1,UTR0001,pay_1,1000.00,20.00,3.60,976.40,2025-05-02T11:00:00+05:30,INR\n"
    )
    s3.put_object(Bucket="paysight-test", Key="landing/bank/2025-05-02.csv", Body=body.encode())
    landing = LandingResource(url=LANDING, spool=str(tmp_path / "spool"))
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    now = datetime(2025, 5, 4, tzinfo=UTC)
    report = load_bank_settlements(landing.landing_dir() / "bank", con, now)
    assert (report.files, report.loaded) == (1, 1)
    assert load_bank_settlements(landing.landing_dir() / "bank", con, now).files == 0


def test_a_missing_bucket_fails_the_load_clearly_and_keeps_the_spool(s3, tmp_path):
    spool = tmp_path / "spool"
    (spool / "bank").mkdir(parents=True)
    (spool / "bank" / "2025-05-02.csv").write_text("kept\n")
    with pytest.raises(dg.Failure, match="landing zone: s3://gone/landing"):
        LandingResource(url="s3://gone/landing", spool=str(spool)).landing_dir()
    assert (spool / "bank" / "2025-05-02.csv").read_text() == "kept\n"


def test_invoice_run_stores_one_object_per_invoice_and_rerun_writes_nothing(
    s3, paysight_env, monkeypatch
):
    from orchestration.defs.billing.jobs import invoice_defs
    from orchestration.lib.env import get_settings
    from orchestration.lib.resources import LedgerResource

    monkeypatch.setenv("PAYSIGHT_DOCUMENTS_URL", DOCS)
    get_settings.cache_clear()
    url = get_settings().ledger_url
    engine = make_engine(url)
    billed_customers(engine, 3, T0, datetime(2025, 5, 2, tzinfo=UTC))
    job = next(j for j in invoice_defs().jobs if j.name == "invoice_run_job")
    config = {"ops": {"invoice_run_op": {"config": {"workers": 1}}}}
    resources = {"ledger": LedgerResource(url=url)}
    with dg.DagsterInstance.ephemeral() as instance:
        first = job.execute_in_process(instance=instance, resources=resources, run_config=config)
        objects = _keys(s3, "documents/")
        again = job.execute_in_process(instance=instance, resources=resources, run_config=config)
    rendered = first.output_for_node("invoice_run_op")["rendered"]
    assert rendered >= 3 and len(objects) == rendered
    assert all(k.endswith(".pdf") for k in objects)
    assert again.output_for_node("invoice_run_op")["rendered"] == 0
    assert _keys(s3, "documents/") == objects  # same keys, none rewritten

    # Retention deletes a document's object with its spool copy; it does not come back.
    rel = next(iter(objects)).removeprefix("documents/")
    store = S3Store.from_url(DOCS)
    assert remove_document_files(get_settings().documents_dir, [rel], store.delete) == 1
    assert mirror(store, get_settings().documents_dir).downloaded == []
    assert "documents/" + rel not in _keys(s3, "documents/")
    _no_s3_folder(paysight_env.parent)
