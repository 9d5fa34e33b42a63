"""Acceptance: objects created through the Stripe SDK against localstripe reach the raw tables,
and a second materialization of the raw gateway assets ingests only what is new."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import stripe

API_KEY = "sk_test_paysight_raw"
# Stripe's published test cards; they only ever reach the local test server.
OK_CARD = "4242424242424242"
DECLINE_ON_CHARGE = "4000000000000341"

# localstripe's own start() binds every interface and pickles its store to /tmp on each write;
# this binds loopback only and keeps the store in memory, so the run is isolated.
_LAUNCHER = """
import sys
from aiohttp import web
from localstripe import resources
from localstripe.server import app
resources.Store.dump_to_disk = lambda self: None
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


@pytest.fixture
def localstripe_url() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-c", _LAUNCHER, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, "localstripe exited at start-up"
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "localstripe did not listen"
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _customer_with_card(sdk: stripe.StripeClient, n: int, card: str = OK_CARD) -> tuple[str, str]:
    cus = sdk.v1.customers.create(params={"email": f"buyer{n}@example.in", "name": f"Buyer {n}"})
    pm = sdk.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": card, "exp_month": 12, "exp_year": 2031, "cvc": "123"},
        }
    )
    sdk.v1.payment_methods.attach(pm.id, params={"customer": cus.id})
    return cus.id, pm.id


def _pay(sdk: stripe.StripeClient, customer: str, pm: str, amount: int, n: int) -> str:
    """Create a PaymentIntent, then confirm it; a decline leaves it failed."""
    pi = sdk.v1.payment_intents.create(
        params={
            "amount": amount,
            "currency": "inr",
            "customer": customer,
            "payment_method": pm,
            "metadata": {"paysight_customer_id": f"c{n}", "invoice_id": f"inv_{n}"},
        }
    )
    # A decline raises, and the intent stays in requires_payment_method: a failed payment.
    with contextlib.suppress(stripe.CardError):
        sdk.v1.payment_intents.confirm(pi.id)
    return pi.id


def _materialize(resources: dict, instance: dg.DagsterInstance) -> dict[str, dict]:
    from orchestration.defs.ingestion.assets import raw_gateway_objects

    result = dg.materialize([raw_gateway_objects], resources=resources, instance=instance)
    assert result.success
    return {
        m.asset_key.to_user_string(): {k: v.value for k, v in m.metadata.items()}
        for m in result.asset_materializations_for_node("raw_gateway_objects")
    }


def _cursor(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    [(value,)] = _rows(con, "select value from raw._cursors where name = 'gateway:stripe'")
    return json.loads(value)


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


@pytest.mark.slow  # a localstripe server and three in-process materializations: ~15-60 s
def test_sdk_objects_reach_raw_tables_and_rerun_ingests_only_new(
    localstripe_url: str, tmp_path: Path, paysight_env: Path
) -> None:
    from orchestration.lib.resources import GatewayResource, LedgerResource, WarehouseResource

    sdk = stripe.StripeClient(API_KEY, base_addresses={"api": localstripe_url})
    warehouse = tmp_path / "warehouse.duckdb"
    resources = {
        "warehouse": WarehouseResource(path=str(warehouse)),
        "gateway": GatewayResource(
            gateways=["stripe"],
            stripe_api_key=API_KEY,
            stripe_api_base=localstripe_url,
            data_dir=str(tmp_path / "data"),
        ),
        # The sync scrubs erased customers (none here) from what the gateway sends.
        "ledger": LedgerResource(url=f"sqlite:///{tmp_path / 'ledger.sqlite'}"),
    }

    cus1, pm1 = _customer_with_card(sdk, 1)
    cus2, pm2 = _customer_with_card(sdk, 2)
    cus3, pm3 = _customer_with_card(sdk, 3, card=DECLINE_ON_CHARGE)
    paid1 = _pay(sdk, cus1, pm1, 49_900, 1)
    paid2 = _pay(sdk, cus2, pm2, 1_19_900, 2)
    declined = _pay(sdk, cus3, pm3, 29_900, 3)
    refund1 = sdk.v1.refunds.create(params={"payment_intent": paid1, "amount": 10_000}).id

    with dg.DagsterInstance.ephemeral() as instance:
        first = _materialize(resources, instance)
        con = duckdb.connect(str(warehouse), read_only=True)
        charges = _rows(
            con,
            "select charge_id, gateway, customer_id, invoice_id, amount_minor, currency, status "
            "from raw.gateway_charges order by amount_minor",
        )
        assert charges == [
            (declined, "stripe", "c3", "inv_3", 29_900, "INR", "failed"),
            (paid1, "stripe", "c1", "inv_1", 49_900, "INR", "succeeded"),
            (paid2, "stripe", "c2", "inv_2", 1_19_900, "INR", "succeeded"),
        ]
        assert _rows(
            con, "select id, payment_id, amount_minor, currency from raw.gateway_refunds"
        ) == [(refund1, paid1, 10_000, "INR")]
        # localstripe books a balance transaction for every charge and refund.
        refund_txns = _rows(
            con, "select amount_minor from raw.gateway_balance_transactions where kind = 'refund'"
        )
        assert refund_txns == [(-10_000,)]
        txns_first = _rows(con, "select count(*) from raw.gateway_balance_transactions")[0][0]
        cursor_first = _cursor(con)
        con.close()
        assert first["raw_gateway_charges"]["rows_copied"] == 3
        assert first["raw_gateway_refunds"]["rows_copied"] == 1
        assert first["raw_gateway_charges"]["rows_in_table"] == 3

        # New objects: one new customer paying, and a second refund on an old payment.
        cus4, pm4 = _customer_with_card(sdk, 4)
        paid4 = _pay(sdk, cus4, pm4, 9_900, 4)
        refund2 = sdk.v1.refunds.create(params={"payment_intent": paid2}).id

        second = _materialize(resources, instance)
        assert second["raw_gateway_charges"]["rows_copied"] == 1  # only the new payment
        assert second["raw_gateway_refunds"]["rows_copied"] == 1
        assert second["raw_gateway_charges"]["rows_in_table"] == 4
        assert second["raw_gateway_refunds"]["rows_in_table"] == 2

        third = _materialize(resources, instance)  # nothing new at the gateway
        assert {k: v["rows_copied"] for k, v in third.items()} == dict.fromkeys(third, 0)

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        assert _rows(con, "select charge_id, amount_minor, status from raw.gateway_charges "
                     f"where charge_id = '{paid4}'") == [(paid4, 9_900, "succeeded")]  # fmt: skip
        assert _rows(
            con, f"select amount_minor from raw.gateway_refunds where id = '{refund2}'"
        ) == [(1_19_900,)]
        for table, key in (
            ("gateway_charges", "charge_id"),
            ("gateway_refunds", "id"),
            ("gateway_balance_transactions", "id"),
        ):
            total, distinct = _rows(
                con, f"select count(*), count(distinct {key}) from raw.{table}"
            )[0]
            assert total == distinct, f"duplicates in raw.{table}"
        txns = _rows(con, "select count(*) from raw.gateway_balance_transactions")[0][0]
        assert txns == txns_first + 2  # the new charge and the new refund, nothing twice
        cursor = _cursor(con)
    finally:
        con.close()
    # The stored payments cursor moved on to the newest payment ("<created>:<ids at that second>").
    assert cursor["payments"] != cursor_first["payments"]
    assert paid4 in cursor["payments"].split(":")[1].split(",")
