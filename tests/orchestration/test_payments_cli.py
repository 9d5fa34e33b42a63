"""`paysight payment-methods` and `paysight refunds` run against a temporary data dir (ledger and
simulated gateway state); bad input exits with code 2 and writes nothing."""

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from billing_jobs.catalog import DEMO_CATALOG, load_catalog
from billing_jobs.customers import create_customer
from billing_jobs.ledger import make_engine, upgrade_ledger
from billing_jobs.ledger import schema as s
from billing_jobs.payments.collection import collect_open_invoices
from billing_jobs.payments.payment_methods import add_payment_method
from billing_jobs.subscriptions.service import create_subscription

T0 = datetime(2025, 3, 3, 6, 0, tzinfo=UTC)
AT = ["--at", T0.isoformat()]
runner = CliRunner()


@pytest.fixture
def env(paysight_env):
    from orchestration.lib.env import get_settings

    engine = make_engine(str(get_settings().ledger_url))
    upgrade_ledger(engine)
    load_catalog(engine, DEMO_CATALOG, now=T0)
    cid = create_customer(
        engine, name="Acme", state_code="29", currency="INR", now=T0, email="ap@acme.test"
    )["id"]
    yield engine, cid
    engine.dispose()


def _cli(*args: str):
    from orchestration.cli import app

    return runner.invoke(app, list(args))


def _count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_add_list_set_default_remove(env):
    _, cid = env
    card = _cli("payment-methods", "add", str(cid), "--kind", "card", "--token",
                "tok_card_hdfc_visa_4242_12_2030", "--last4", "4242", "--exp-month", "12",
                "--exp-year", "2030", "--brand", "visa", "--json", *AT)  # fmt: skip
    assert card.exit_code == 0, card.output
    card_id = json.loads(card.output)["id"]
    upi = _cli("payment-methods", "add", str(cid), "--kind", "upi", "--token",
               "tok_upi_okicici", "--vpa", "acme@okicici", "--json", *AT)  # fmt: skip
    assert upi.exit_code == 0, upi.output
    upi_id = json.loads(upi.output)["id"]
    listed = json.loads(_cli("payment-methods", "list", str(cid), "--json").output)
    assert [(m["id"], m["is_default"]) for m in listed] == [(card_id, True), (upi_id, False)]
    human = _cli("payment-methods", "list", str(cid))
    assert "•••• 4242" in human.output and human.exit_code == 0
    assert _cli("payment-methods", "set-default", str(cid), str(upi_id), *AT).exit_code == 0
    removed = _cli("payment-methods", "remove", str(cid), str(card_id), "--json", *AT)
    assert removed.exit_code == 0 and json.loads(removed.output)["removed_at"]
    listed = json.loads(_cli("payment-methods", "list", str(cid), "--json").output)
    assert [(m["id"], m["is_default"]) for m in listed] == [(upi_id, True)]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--kind", "cheque", "--token", "tok_x_1"], "unknown payment method"),
        (["--kind", "card", "--token", "4242 4242 4242 4242"], "looks like a card number"),
        (["--kind", "card", "--token", "tok_card_hdfc_visa_4242_12_2030", "--last4", "4242"],
         "exp_month and exp_year"),
        (["--kind", "upi", "--token", "tok_upi_ybl", "--vpa", "not-a-vpa"], "VPA"),
        (["--kind", "netbanking", "--token", "tok_netbanking_NOPE"], "not supported"),
        (["--kind", "netbanking", "--token", "tok_netbanking_HDFC", "--gateway", "paypal"],
         "not active"),
    ],
)  # fmt: skip
def test_bad_method_exits_2_and_stores_nothing(env, args, needle):
    engine, cid = env
    result = _cli("payment-methods", "add", str(cid), *args, *AT)
    assert result.exit_code == 2, result.output
    assert needle in result.output
    assert "4242 4242 4242 4242" not in result.output  # a PAN is never echoed
    assert _count(engine, s.payment_methods) == 0


def test_unknown_customer_or_method_exits_2(env):
    _, cid = env
    assert _cli("payment-methods", "list", "999").exit_code == 2
    out = _cli("payment-methods", "set-default", str(cid), "77", *AT)
    assert out.exit_code == 2 and "no payment method 77" in out.output
    assert _cli("payment-methods", "remove", str(cid), "77", *AT).exit_code == 2


def test_refunds_create_and_refuse_above_captured(env):
    from orchestration.lib.gateways import gateway_from_settings

    engine, cid = env
    gw = gateway_from_settings(clock=lambda: T0)
    add_payment_method(engine, gw, cid, {"kind": "netbanking", "token": "tok_netbanking_HDFC"}, T0)
    create_subscription(engine, customer_id=cid, plan="scale-monthly", start=T0)
    report = collect_open_invoices(engine, gw, "simulated", T0)
    assert report.paid, report
    inv_id = report.paid[0]
    with engine.connect() as conn:
        paid = conn.execute(
            select(s.invoices.c.amount_paid_minor).where(s.invoices.c.id == inv_id)
        ).scalar_one()
    too_much = _cli("refunds", "create", str(inv_id), "--amount-minor", str(paid + 1), *AT)
    assert too_much.exit_code == 2 and "exceeds" in too_much.output
    assert _count(engine, s.credit_notes) == 0
    ok = _cli("refunds", "create", str(inv_id), "--amount-minor", "50000", "--memo",
              "goodwill", "--json", *AT)  # fmt: skip
    assert ok.exit_code == 0, ok.output
    body = json.loads(ok.output)
    assert body["amount_minor"] == 50_000 and body["refundable_left_minor"] == paid - 50_000
    assert body["credit_note"]["number"]
    missing = _cli("refunds", "create", "pi_nope", "--amount-minor", "1", *AT)
    assert missing.exit_code == 2 and "no captured payment" in missing.output
    assert _count(engine, s.credit_notes) == 1


def _declined_invoice(engine, cid) -> tuple[int, datetime]:
    """A card that expired in March, billed in April: a deterministic hard decline."""
    from datetime import timedelta

    from orchestration.lib.gateways import gateway_from_settings

    start = T0 + timedelta(days=31)
    gw = gateway_from_settings(clock=lambda: start)
    card = {"kind": "card", "token": "tok_card_sbi_visa_4242_03_2025", "last4": "4242",
            "exp_month": 3, "exp_year": 2025}  # fmt: skip
    add_payment_method(engine, gw, cid, card, T0)
    create_subscription(engine, customer_id=cid, plan="scale-monthly", start=start)
    report = collect_open_invoices(engine, gw, "simulated", start)
    assert report.failed and not report.paid, report
    return report.failed[0], start


@pytest.mark.parametrize("policy", ["smart", "exponential", "fixed"])
def test_retries_run_charges_what_is_due(env, policy):
    from datetime import timedelta

    engine, cid = env
    inv_id, start = _declined_invoice(engine, cid)
    t1 = (start + timedelta(days=4)).isoformat()
    early = _cli("retries", "run", "--policy", policy, "--as-of", start.isoformat(), "--json")
    assert early.exit_code == 0, early.output
    assert json.loads(early.output)["charged"] == []  # a hard decline waits for a new method
    new = _cli("payment-methods", "add", str(cid), "--kind", "netbanking", "--token",
               "tok_netbanking_HDFC", "--default", "--at", t1)  # fmt: skip
    assert new.exit_code == 0, new.output
    out = _cli("retries", "run", "--policy", policy, "--as-of", t1, "--json")
    assert out.exit_code == 0, out.output
    body = json.loads(out.output)
    assert body["charged"] == [inv_id]
    assert body["policy"].startswith(policy)
    if policy == "smart":  # no MLflow store here: smart says it fell back
        assert "fallback" in body["policy"]
    again = json.loads(_cli("retries", "run", "--as-of", t1, "--json").output)
    assert again["charged"] == []  # the retry was consumed


def test_retries_run_refuses_unknown_policy_and_bad_instant(env):
    engine, _ = env
    bad = _cli("retries", "run", "--policy", "aggressive")
    assert bad.exit_code == 2 and "unknown retry policy 'aggressive'" in bad.output
    when = _cli("retries", "run", "--as-of", "yesterday")
    assert when.exit_code == 2 and "ISO 8601" in when.output
    assert _count(engine, s.payment_attempts) == 0


def test_dunning_run_sends_the_first_reminder_once(env):
    from datetime import timedelta

    engine, cid = env
    _, start = _declined_invoice(engine, cid)
    day2 = (start + timedelta(days=2)).isoformat()
    first = _cli("dunning", "run", "--as-of", day2, "--json")
    assert first.exit_code == 0, first.output
    with engine.connect() as conn:
        queued = conn.execute(text("select count(*) from document_deliveries")).scalar_one()
    assert queued >= 1
    again = _cli("dunning", "run", "--as-of", day2, "--json")
    assert again.exit_code == 0, again.output
    with engine.connect() as conn:
        assert conn.execute(text("select count(*) from document_deliveries")).scalar_one() == queued
